# ECG classification kit: train_model.py, run_model.py and evaluation/evaluate.py inside an image.
# Base: the same Python as CI, pinned. PyTorch comes from PyPI's Linux wheels: torch 2.13.0 is a
# CUDA 13.0 build (it bundles the CUDA runtime) and needs a host NVIDIA driver 580 or newer;
# the driver comes from the host (docker run --gpus all). The Challenge ran without internet,
# so the ImageNet GoogLeNet weights are fetched here, at build time.
# The image's user is uid 1000; folders mounted for outputs must be writable by the user the
# container runs as: run it as yourself with docker run --user "$(id -u):$(id -g)".
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ECG_KIT_GOOGLENET_WEIGHTS=/opt/ecg-kit/googlenet-imagenet1k-v1.pth \
    MPLCONFIGDIR=/tmp/matplotlib

# The Challenge's fixed lines.
RUN mkdir /physionet
WORKDIR /physionet

# The requirements (about 5 GB: torch with its CUDA libraries, triton) in a layer of their own,
# before the code, so that editing the code does not reinstall them; torchvision only for the
# pretrained GoogLeNet weights, fetched once into the image.
COPY requirements.txt /physionet/requirements.txt
RUN pip install --no-cache-dir -r requirements.txt torchvision==0.28.0
COPY scripts/fetch_googlenet_weights.py /opt/ecg-kit/fetch_googlenet_weights.py
RUN mkdir -p /opt/ecg-kit \
    && python /opt/ecg-kit/fetch_googlenet_weights.py "$ECG_KIT_GOOGLENET_WEIGHTS" \
    && useradd --create-home --uid 1000 ecg

# The code last: an edit rebuilds only this layer.
COPY --chown=1000:1000 ./ /physionet

USER 1000

CMD ["python", "train_model.py", "--help"]
