#!/usr/bin/env python3
"""Writes go_pointers.txt: which optional scalar fields of the schema are Go pointers.

Go's protobuf marshaller (gogo, as Kubernetes generates it) writes every
non-pointer field, zero or not, and a pointer field only when it is set. Go's
JSON encoder then drops a zero non-pointer field (`omitempty`) but keeps a set
pointer even when it points at zero. So a zero on the wire means "unset" for
`minReadySeconds` and "zero" for `replicas`, and only the Go type tells which.

Neither k8s-pb nor k8s-openapi carries that, but every Kubernetes Go binary
does: gogo embeds each package's gzipped FileDescriptorProto, compiled from the
`.proto` as go-to-protobuf wrote it, with its gogoproto field options still on.
A scalar field without `(gogoproto.nullable) = false` is a pointer. This script
reads those descriptors out of a `kubectl` binary, keeps the messages that
protobuf_schema.py puts in the schema, and lists their pointer scalars. It also
checks the JSON names protobuf_schema.py derives from k8s-pb and k8s-openapi
against the descriptors' own field names (equal but for case: Kubernetes'
`IngressClassParametersReference.apiGroup` is `aPIGroup` in its .proto).

Usage: python3 api/src/protobuf/extract_go_pointers.py [--kubectl PATH]
The default is the newest `kubectl.1.*` next to the one on PATH (the dispatcher
installed here runs one of those), else `kubectl` itself. Re-run
protobuf_schema.py afterwards.
"""

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "go_pointers.txt")

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"  # how Go's gzip writer starts
GOGO_NULLABLE = 65001


def die(msg):
    sys.exit(f"extract_go_pointers.py: {msg}")


def load_generator():
    spec = importlib.util.spec_from_file_location("protobuf_schema", os.path.join(HERE, "protobuf_schema.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fields_of(buf):
    """(number, wire type, value) of each field of a protobuf message."""
    i = 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 2:
            n = varint()
            yield number, wire, buf[i : i + n]
            i += n
        elif wire == 1:
            yield number, wire, buf[i : i + 8]
            i += 8
        elif wire == 5:
            yield number, wire, buf[i : i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


def descriptors(binary):
    """{package: [(message name, [{name, number, label, type, nullable}])]}."""
    data = open(binary, "rb").read()
    found = {}
    i = data.find(GZIP_HEADER)
    while i >= 0:
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i : i + (1 << 21)])
            parsed = parse_file(raw)
        except (zlib.error, ValueError, IndexError, UnicodeDecodeError):
            parsed = None
        if parsed and parsed[0].startswith("k8s.io."):
            found.setdefault(parsed[0], parsed[1])
        i = data.find(GZIP_HEADER, i + 1)
    return found


def parse_file(raw):
    package, messages = None, []
    for number, wire, value in fields_of(raw):
        if number == 2 and wire == 2:
            package = value.decode()
        elif number == 4 and wire == 2:
            messages.append(parse_message(value))
    if package is None:
        return None
    return package, messages


def parse_message(raw):
    name, fields = None, []
    for number, wire, value in fields_of(raw):
        if number == 1 and wire == 2:
            name = value.decode()
        elif number == 2 and wire == 2:
            f = {"nullable": True, "label": 1, "type": 0}
            for n, w, v in fields_of(value):
                if n == 1:
                    f["name"] = v.decode()
                elif n == 3:
                    f["number"] = v
                elif n == 4:
                    f["label"] = v
                elif n == 5:
                    f["type"] = v
                elif n == 8:
                    for on, ow, ov in fields_of(v):
                        if on == GOGO_NULLABLE and ow == 0:
                            f["nullable"] = bool(ov)
            fields.append(f)
    return name, fields


def default_kubectl():
    path = shutil.which("kubectl")
    if not path:
        die("no kubectl on PATH; pass --kubectl")
    real = os.path.realpath(path)
    versioned = glob.glob(real + ".1.*")
    if versioned:
        return max(versioned, key=lambda p: tuple(int(x) for x in p.rsplit(".1.", 1)[1].split(".")))
    return real


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kubectl", default=None)
    args = ap.parse_args()
    binary = args.kubectl or default_kubectl()
    version = subprocess.run([binary, "version", "--client"], capture_output=True, text=True).stdout
    m = re.search(r"Client Version: (v[\w.\-+]+)", version)
    version = m.group(1) if m else "unknown version"

    gen = load_generator()
    pb_root = gen.registry_dir("k8s-pb", gen.K8S_PB_VERSION)
    openapi_root = gen.registry_dir("k8s-openapi", gen.K8S_OPENAPI_VERSION)
    schema = gen.build(pb_root, openapi_root, pointers=set())

    by_name = {}
    for package, messages in descriptors(binary).items():
        for name, fields in messages:
            by_name[f"{package}.{name}"] = fields

    pointers, problems, missing = [], [], []
    for _, proto_name, special, fields in schema.messages:
        desc = by_name.get(proto_name)
        if desc is None:
            missing.append(proto_name)
            continue
        desc = {f["number"]: f for f in desc}
        for f in fields:
            d = desc.get(f.number)
            if d is None:
                continue  # newer than this kubectl
            # Proto names are the JSON names but for case (`aPIGroup` is
            # `apiGroup` in JSON); an inline field has no JSON name to compare.
            if f.card != "Inline" and d["name"].lower() != f.json_name.lower():
                problems.append(f"{proto_name} field {f.number}: named {d['name']}, schema says {f.json_name}")
            if f.ty != "Message" and f.card not in ("Repeated", "Map") and d["nullable"]:
                pointers.append(f"{proto_name} {d['name']}")
    for p in problems:
        print("mismatch:", p, file=sys.stderr)
    if problems:
        die(f"{len(problems)} fields disagree with the descriptors in {binary}")

    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write("# Optional scalar fields of the schema that are Go pointers: a zero value on the\n")
        fh.write("# wire is meant, and JSON keeps it. Everything else optional drops its zero.\n")
        fh.write(f"# Extracted by extract_go_pointers.py from the gogo descriptors in kubectl {version}.\n")
        if missing:
            fh.write(f"# Not in that kubectl (so none of their fields is listed): {', '.join(sorted(missing))}.\n")
        for line in sorted(pointers):
            fh.write(line + "\n")
    print(f"wrote {os.path.relpath(OUT)}: {len(pointers)} pointer fields from kubectl {version}")


if __name__ == "__main__":
    main()
