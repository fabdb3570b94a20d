# ECG classification kit: train_model.py, run_model.py and evaluation/evaluate.py inside an image.
# Base: the same Python as CI, pinned. PyTorch comes from PyPI's Linux wheels, which are
# CUDA-enabled (they bundle the CUDA runtime); the GPU driver comes from the host
# (docker run --gpus all). The Challenge ran without internet, so the ImageNet GoogLeNet
# weights are fetched here, at build time.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ECG_KIT_GOOGLENET_WEIGHTS=/opt/ecg-kit/googlenet-imagenet1k-v1.pth \
    MPLCONFIGDIR=/tmp/matplotlib

# The Challenge's fixed lines.
RUN mkdir /physionet
COPY ./ /physionet
WORKDIR /physionet

# Requirements first (torch==2.13.0 from PyPI is the CUDA build), then torchvision for the
# pretrained GoogLeNet weights, fetched once into the image.
RUN pip install --no-cache-dir -r requirements.txt torchvision==0.28.0 \
    && mkdir -p /opt/ecg-kit \
    && python scripts/fetch_googlenet_weights.py "$ECG_KIT_GOOGLENET_WEIGHTS" \
    && useradd --create-home --uid 1000 ecg \
    && chown -R ecg /physionet

USER 1000

CMD ["python", "train_model.py", "--help"]
