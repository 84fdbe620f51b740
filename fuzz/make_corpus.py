#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora into fuzz/corpus/ (small valid inputs of each format).

Run from the repository root after building kiln (build/apps/kiln makes the kiln model file,
build/apps/task1 the checkpoint):  /usr/bin/python3 fuzz/make_corpus.py [corpus ...]
Naming corpora (idx, hdf5, keras_config, torch, onnx) writes only those; only hdf5 needs the apps.
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

import h5py
import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
corpus = os.path.join(root, "fuzz", "corpus")
keras = os.path.join(root, "tests", "fixtures", "keras")
known = ["idx", "hdf5", "keras_config", "torch", "onnx"]
wanted = sys.argv[1:] or known
for name in wanted:
    if name not in known:
        sys.exit("make_corpus.py: unknown corpus '%s' (known: %s)" % (name, ", ".join(known)))


def write(sub, name, data):
    os.makedirs(os.path.join(corpus, sub), exist_ok=True)
    with open(os.path.join(corpus, sub, name), "wb") as f:
        f.write(data)


if "idx" in wanted:
    # IDX: 2 images of 4x4, their labels, and the gzip form of both.
    images = struct.pack(">IIII", 0x803, 2, 4, 4) + bytes(range(32))
    labels = struct.pack(">II", 0x801, 2) + bytes([3, 7])
    write("idx", "images.idx", images)
    write("idx", "labels.idx", labels)
    write("idx", "images.idx.gz", gzip.compress(images, mtime=0))
    write("idx", "labels.idx.gz", gzip.compress(labels, mtime=0))

if "hdf5" in wanted:
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

if "keras_config" in wanted:
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

if "torch" in wanted:
    # PyTorch state_dicts as torch.save writes them (tests/fixtures/make_torch_state_dict.py).
    torch_fixtures = os.path.join(root, "tests", "fixtures", "torch")
    for name in ["small_cnn_state_dict.pt", "small_cnn_state_dict_f16.pt", "small_cnn_legacy.pt"]:
        write("torch", name, open(os.path.join(torch_fixtures, name), "rb").read())

if "onnx" in wanted:
    # ONNX models: the PyTorch exports kiln's tests import (tests/fixtures/make_onnx_fixtures.py),
    # and two written here for what those leave out: NHWC inputs, two inputs (forward_many), Pad,
    # Concat, AveragePool, Gemm with transB, Tanh, Identity at opset 13; and at opset 9 the
    # attribute forms (Pad's pads, Dropout's ratio), a Constant node's shape for a Reshape that
    # flattens NHWC-held images, MatMul with its bias Add, and a BatchNormalization.
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    onnx_fixtures = os.path.join(root, "tests", "fixtures", "onnx")
    for name in ["small_cnn_opset9.onnx", "small_cnn_opset11.onnx", "small_cnn_opset13.onnx", "small_cnn_opset17.onnx",
                 "residual_opset13.onnx", "binary_opset13.onnx"]:
        write("onnx", name, open(os.path.join(onnx_fixtures, name), "rb").read())
    rng = np.random.RandomState(20250316)

    def weights(name, *shape, dtype=np.float32):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(dtype), name)

    def image(name, *shape):  # a float tensor whose batch axis is left open, as exporters write it
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])

    def model(nodes, inputs, output, initializers, opset, name):
        graph = helper.make_graph(nodes, name, inputs, [output], initializers)
        m = helper.make_model(graph, producer_name="kiln fuzz/make_corpus.py", opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 7
        onnx.checker.check_model(m, full_check=True)
        return m.SerializeToString()

    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"], name="sum"),
        helper.make_node("Transpose", ["sum"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Pad", ["nchw", "pads"], ["padded"], name="pad", mode="constant"),
        helper.make_node("Conv", ["padded", "conv_w", "conv_b"], ["conv"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Tanh", ["conv"], ["tanh"], name="tanh"),
        helper.make_node("Concat", ["tanh", "nchw"], ["joined"], name="join", axis=1),
        helper.make_node("AveragePool", ["joined"], ["pooled"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc"], name="fc", transB=1, alpha=0.5),
        helper.make_node("Sigmoid", ["fc"], ["prob"], name="sigmoid"),
        helper.make_node("Identity", ["prob"], ["output"], name="identity"),
    ]
    initializers = [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
                    weights("conv_w", 3, 2, 3, 3), weights("conv_b", 3),
                    numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
                    weights("fc_w", 4, 45), weights("fc_b", 4)]
    write("onnx", "two_inputs_nhwc_opset13.onnx",
          model(nodes, [image("a", 6, 6, 2), image("b", 6, 6, 2)], image("output", 4), initializers, 13, "two_inputs"))

    nodes = [
        helper.make_node("Pad", ["input"], ["padded"], name="pad", mode="constant", pads=[0, 0, 1, 1, 0, 0, 1, 1]),
        helper.make_node("MaxPool", ["padded"], ["pooled"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["pooled", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"], name="bn",
                         epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["relu"], name="relu"),
        helper.make_node("Constant", [], ["flat_shape"], name="shape",
                         value=numpy_helper.from_array(np.array([-1, 50], np.int64))),
        helper.make_node("Reshape", ["relu", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc_w"], ["fc"], name="fc"),
        helper.make_node("Add", ["fc", "fc_b"], ["logits"], name="bias"),
        helper.make_node("Dropout", ["logits"], ["dropped"], name="dropout", ratio=0.25),
        helper.make_node("Softmax", ["dropped"], ["output"], name="softmax", axis=1),
    ]
    initializers = [weights("bn_scale", 2), weights("bn_bias", 2), weights("bn_mean", 2),
                    numpy_helper.from_array(rng.uniform(0.5, 2.0, 2).astype(np.float32), "bn_var"),
                    weights("fc_w", 50, 6), weights("fc_b", 6)]
    write("onnx", "mlp_attributes_opset9.onnx",
          model(nodes, [image("input", 2, 8, 8)], image("output", 6), initializers, 9, "attributes"))

    # Three that once crashed fuzz_onnx (sizes past any example, a float pad of 1e30): kept as seeds.
    def probe(nodes, inputs, output, initializers, name):
        graph = helper.make_graph(nodes, name, inputs, [output], initializers)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 7
        return m.SerializeToString()

    write("onnx", "huge_input.onnx", probe([helper.make_node("Relu", ["x"], ["y"])], [image("x", 4096, 4096, 4096)],
                                           image("y", 4096, 4096, 4096), [], "huge_input"))
    write("onnx", "overflow_input.onnx", probe([helper.make_node("Relu", ["x"], ["y"])], [image("x", *[1 << 24] * 5)],
                                               image("y", 1), [], "overflow_input"))
    write("onnx", "pad_float_huge.onnx",
          probe([helper.make_node("Pad", ["x", "p"], ["y"])], [image("x", 1, 4, 4)], image("y", 1, 6, 6),
                [numpy_helper.from_array(np.array([0, 0, 1e30, 1, 0, 0, 1, 1], np.float32), "p")], "pad_float_huge"))

print("wrote", sum(len(os.listdir(os.path.join(corpus, c))) for c in wanted), "seed files under", corpus)
