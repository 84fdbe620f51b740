#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora into fuzz/corpus/ (small valid inputs of each format).

Run from the repository root after building kiln (build/apps/kiln makes the kiln model file,
build/apps/task1 the checkpoint):  /usr/bin/python3 fuzz/make_corpus.py
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile

import h5py
import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
corpus = os.path.join(root, "fuzz", "corpus")
keras = os.path.join(root, "tests", "fixtures", "keras")


def write(sub, name, data):
    os.makedirs(os.path.join(corpus, sub), exist_ok=True)
    with open(os.path.join(corpus, sub, name), "wb") as f:
        f.write(data)


# IDX: 2 images of 4x4, their labels, and the gzip form of both.
images = struct.pack(">IIII", 0x803, 2, 4, 4) + bytes(range(32))
labels = struct.pack(">II", 0x801, 2) + bytes([3, 7])
write("idx", "images.idx", images)
write("idx", "labels.idx", labels)
write("idx", "images.idx.gz", gzip.compress(images, mtime=0))
write("idx", "labels.idx.gz", gzip.compress(labels, mtime=0))

# HDF5: a tiny PCam course-layout file, a Keras legacy file, a kiln model file, a checkpoint.
with tempfile.TemporaryDirectory() as tmp:
    p = os.path.join(tmp, "pcam.h5")
    with h5py.File(p, "w") as f:
        f["x"] = (np.arange(2 * 8 * 8 * 3) % 256).astype(np.uint8).reshape(2, 8, 8, 3)
        f["y"] = np.array([0, 1], dtype=np.uint8)
    write("hdf5", "pcam-course.h5", open(p, "rb").read())
    write("hdf5", "keras2-tiny.h5", open(os.path.join(keras, "keras2-tiny.h5"), "rb").read())
    m = os.path.join(tmp, "kiln-model.h5")
    subprocess.run([os.path.join(root, "build", "apps", "kiln"), "convert", os.path.join(keras, "keras2-tiny.h5"), m,
                    "--to", "kiln"], check=True, stdout=subprocess.DEVNULL)
    write("hdf5", "kiln-model.h5", open(m, "rb").read())
    out, ck = os.path.join(tmp, "out"), os.path.join(tmp, "ckpt")
    subprocess.run([os.path.join(root, "build", "apps", "task1"), "--quick", "--epochs", "1", "--train-images", "200",
                    "--threads", "1", "--data-dir", os.path.join(root, "tests", "data", "mnist"), "--out", out,
                    "--checkpoint-dir", ck], check=True, stdout=subprocess.DEVNULL)
    write("hdf5", "checkpoint.h5", open(os.path.join(ck, "run1.ckpt.h5"), "rb").read())

# Keras model configs, as the importer sees them.
for name in ["keras3.1-convnet.h5", "keras2-tiny.h5", "keras2-tiny-cf.h5", "keras2-nested-cf.h5",
             "keras2-residual.h5", "keras2-residual-cf.h5"]:
    with h5py.File(os.path.join(keras, name), "r") as f:
        c = f.attrs["model_config"]
        write("keras_config", name.replace(".h5", ".json"), c.encode() if isinstance(c, str) else bytes(c))
for name in ["keras3-functional.keras", "keras3-residual.keras"]:
    with zipfile.ZipFile(os.path.join(keras, name)) as z:
        write("keras_config", name.replace(".keras", ".json"), z.read("config.json"))
# A graph whose Add reads a layer that reads the Add: a cycle for the fuzzer to start from.
with zipfile.ZipFile(os.path.join(keras, "keras3-residual.keras")) as z:
    cyclic = json.loads(z.read("config.json"))
for layer in cyclic["config"]["layers"]:
    if layer["name"] == "stem":
        layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "shortcut"
write("keras_config", "keras3-residual-cycle.json", json.dumps(cyclic).encode())
# PyTorch state_dicts as torch.save writes them (tests/fixtures/make_torch_state_dict.py).
torch_fixtures = os.path.join(root, "tests", "fixtures", "torch")
for name in ["small_cnn_state_dict.pt", "small_cnn_state_dict_f16.pt", "small_cnn_legacy.pt"]:
    write("torch", name, open(os.path.join(torch_fixtures, name), "rb").read())
print("wrote", sum(len(fs) for _, _, fs in os.walk(corpus)), "seed files under", corpus)
