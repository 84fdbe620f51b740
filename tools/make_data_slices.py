#!/usr/bin/python3
"""Cut the small data slices committed under tests/testdata from full copies of MNIST and PCam.

Run with a Python that has h5py and numpy (on the dev machine: /usr/bin/python3):

    /usr/bin/python3 tools/make_data_slices.py --mnist DIR --pcam DIR [--out tests/testdata]

--mnist holds the four original IDX files (plain or .gz); --pcam holds the course layout
(train.h5, valid.h5, test_x.h5) and the original-layout sample
camelyonpatch_level_2_split_valid_{x,y}.h5. The slices are the *first* rows of each file, so
the result does not depend on a random seed, and the gzip streams are written with mtime 0 so
that re-running the script gives byte-identical MNIST files.

The PCam slice sizes are smaller than the MNIST ones because a 32x32x3 patch compresses to
about 2.8 kB (a 28x28 digit to about 160 bytes): 1,000 train rows keep train.h5 under 3 MB.
"""
import argparse
import gzip
import os
import struct

import h5py
import numpy as np

MNIST_ROWS = {"train": 2000, "t10k": 500}
PCAM_COURSE_ROWS = {"train.h5": 1000, "valid.h5": 300, "test_x.h5": 300}
PCAM_ORIGINAL_ROWS = 32


def read_idx(path_base):
    """Return (dims, payload) of an IDX file given without or with .gz."""
    for path, opener in ((path_base, open), (path_base + ".gz", gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                raw = f.read()
            zero, dtype, rank = struct.unpack(">HBB", raw[:4])
            assert zero == 0 and dtype == 0x08, f"{path}: not a uint8 IDX file"
            dims = struct.unpack(">" + "I" * rank, raw[4:4 + 4 * rank])
            return list(dims), raw[4 + 4 * rank:]
    raise FileNotFoundError(path_base + "[.gz]")


def write_idx_gz(path, dims, payload):
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    # GzipFile with mtime=0 and no file name in the header: reproducible bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                compresslevel=9, mtime=0) as f:
        f.write(header + payload)


def cut_mnist(src, out):
    os.makedirs(out, exist_ok=True)
    for prefix, rows in MNIST_ROWS.items():
        dims, data = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte"))
        row_bytes = dims[1] * dims[2]
        write_idx_gz(os.path.join(out, f"{prefix}-images-idx3-ubyte.gz"),
                     [rows, dims[1], dims[2]], data[:rows * row_bytes])
        dims, data = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte"))
        write_idx_gz(os.path.join(out, f"{prefix}-labels-idx1-ubyte.gz"), [rows], data[:rows])


def copy_dataset(dst_file, name, src_ds, rows):
    """Write the first `rows` of src_ds, chunked and compressed the way the source was."""
    data = src_ds[:rows]
    kwargs = {}
    if src_ds.chunks is not None:
        kwargs["chunks"] = (min(src_ds.chunks[0], rows),) + tuple(src_ds.chunks[1:])
    if src_ds.compression is not None:
        kwargs["compression"] = src_ds.compression
        kwargs["compression_opts"] = src_ds.compression_opts
    dst_file.create_dataset(name, data=data, dtype=src_ds.dtype, **kwargs)


def cut_pcam(src, out):
    os.makedirs(out, exist_ok=True)
    for fname, rows in PCAM_COURSE_ROWS.items():
        with h5py.File(os.path.join(src, fname), "r") as fin, \
             h5py.File(os.path.join(out, fname), "w") as fout:
            for name in fin:
                copy_dataset(fout, name, fin[name], rows)
    for part in ("x", "y"):
        fname = f"camelyonpatch_level_2_split_valid_{part}.h5"
        with h5py.File(os.path.join(src, fname), "r") as fin, \
             h5py.File(os.path.join(out, fname), "w") as fout:
            copy_dataset(fout, part, fin[part], PCAM_ORIGINAL_ROWS)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", required=True, help="directory with the full MNIST IDX files")
    ap.add_argument("--pcam", required=True, help="directory with the PCam course/original files")
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "testdata"))
    args = ap.parse_args()
    cut_mnist(args.mnist, os.path.join(args.out, "mnist"))
    cut_pcam(args.pcam, os.path.join(args.out, "pcam"))
    for sub in ("mnist", "pcam"):
        d = os.path.join(args.out, sub)
        for f in sorted(os.listdir(d)):
            print(f"{os.path.getsize(os.path.join(d, f)):>10}  {sub}/{f}")


if __name__ == "__main__":
    main()
