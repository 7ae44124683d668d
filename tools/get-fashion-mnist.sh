#!/usr/bin/env bash
# Make Fashion-MNIST available: Debian's package where apt can install it, else
# torchvision's download into ./data, else say exactly what to do.
set -u
DEB_DIR=/usr/share/datasets/fashion-mnist
PY=${1:-.venv/bin/python}

if [ -f "$DEB_DIR/train-images-idx3-ubyte.gz" ] || [ -f data/FashionMNIST/raw/train-images-idx3-ubyte ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "pfs: installing Fashion-MNIST from Debian's package dataset-fashion-mnist" >&2
    $SUDO apt-get update -qq >/dev/null 2>&1
    if $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 && [ -f "$DEB_DIR/train-images-idx3-ubyte.gz" ]; then
      exit 0
    fi
  fi
fi
echo "pfs: trying torchvision's download of Fashion-MNIST into ./data" >&2
if "$PY" -c "import torchvision; [torchvision.datasets.FashionMNIST('data', train=t, download=True) for t in (True, False)]" >/dev/null 2>&1; then
  exit 0
fi
cat >&2 <<MSG
pfs: could not get Fashion-MNIST.
  - On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist   (files go to $DEB_DIR)
  - Or copy the four *-ubyte.gz files of Fashion-MNIST into ./data/FashionMNIST/raw/
  - Or run with internet access once so torchvision can download them.
MSG
exit 1
