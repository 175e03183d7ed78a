#!/usr/bin/env python3
"""Generates api/src/generated/protobuf_schema.rs: the protobuf schema of the kinds Skiff serves.

Kubernetes' protobuf schema lives in the `generated.proto` files of k8s.io/api and
k8s.io/apimachinery. The `k8s-pb` crate carries them as prost structs, one field a
`#[prost(<type>, <label>, tag = "N")]` attribute: that gives each message's field
numbers, wire types and message references. prost renames fields to snake case
(`podIPs` becomes `pod_i_ps`), so the JSON names come from `k8s-openapi`, whose
serde code spells every key (`"podIPs" => Field::Key_pod_ips`), matched by
lower-casing both and dropping underscores; `k8s-openapi` also says which fields
are required (no `omitempty`: a zero value is still written). A proto field with
no JSON key of that name is an embedded Go struct (`json:",inline"`, e.g.
`Volume.volumeSource`), whose fields the JSON object carries at its own level.

Neither source says which optional scalars are Go pointers, the one thing that
decides whether a zero value on the wire (Go writes every non-pointer field, zero
or not) is meant (`replicas: 0`) or just unset (`minReadySeconds: 0`). That list
is `go_pointers.txt`, beside this script; see its header.

Roots: every kind of `api/src/resource.rs` `RESOURCES` that k8s-pb knows (that
is all but Skiff's own `Component`), plus the bodies clients send to
subresources (EXTRA_ROOTS). The schema is their closure over message references,
plus the apimachinery types with a JSON form of their own (SPECIAL).

Usage: python3 api/generators/protobuf_schema.py [--k8s-pb DIR] [--k8s-openapi DIR]
Both default to the versions in ~/.cargo/registry. The output is run through
rustfmt, so that re-running the script reproduces protobuf_schema.rs byte for byte. After
a change of roots or of k8s-pb, run extract_go_pointers.py and then this again.
"""

import argparse
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "api", "src", "generated", "protobuf_schema.rs")
POINTERS = os.path.join(HERE, "go_pointers.txt")
RESOURCE_RS = os.path.join(REPO, "api", "src", "resource.rs")

K8S_PB_VERSION = "0.9.0"
K8S_OPENAPI_VERSION = "0.29.0"

# Bodies sent to subresources and options, by (apiVersion, kind) -> k8s-pb path.
# `DeleteOptions` is sent under the apiVersion of whatever is deleted, so its
# apiVersion is left open ("").
EXTRA_ROOTS = [
    ("", "DeleteOptions", "apimachinery/pkg/apis/meta/v1/DeleteOptions"),
    ("autoscaling/v1", "Scale", "api/autoscaling/v1/Scale"),
    ("authentication.k8s.io/v1", "TokenRequest", "api/authentication/v1/TokenRequest"),
    ("authentication.k8s.io/v1", "SelfSubjectReview", "api/authentication/v1/SelfSubjectReview"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "api/authorization/v1/SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview", "api/authorization/v1/SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview", "api/authorization/v1/LocalSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "api/authorization/v1/SelfSubjectRulesReview"),
]

# Messages whose JSON form is not an object of their fields, with the field
# numbers the decoder reads them by (checked against k8s-pb here).
SPECIAL = {
    "apimachinery/pkg/apis/meta/v1/Time": ("Time", {1: "seconds", 2: "nanos"}),
    "apimachinery/pkg/apis/meta/v1/MicroTime": ("MicroTime", {1: "seconds", 2: "nanos"}),
    "apimachinery/pkg/apis/meta/v1/Duration": ("Duration", {1: "duration"}),
    "apimachinery/pkg/apis/meta/v1/FieldsV1": ("FieldsV1", {1: "raw"}),
    "apimachinery/pkg/api/resource/Quantity": ("Quantity", {1: "string"}),
    "apimachinery/pkg/util/intstr/IntOrString": (
        "IntOrString",
        {1: "type", 2: "int_val", 3: "str_val"},
    ),
    "apimachinery/pkg/runtime/RawExtension": ("RawExtension", {1: "raw"}),
    # `[]string` named types (a user's extra attributes in reviews).
    "api/authentication/v1/ExtraValue": ("StringList", {1: "items"}),
    "api/authorization/v1/ExtraValue": ("StringList", {1: "items"}),
}

SCALARS = {
    "string": "String",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "Int32",
    "int64": "Int64",
    "double": "Double",
}


class PbField:
    def __init__(self, name, number, kind, label, ref):
        self.name = name  # prost (snake case) name, without r#
        self.number = number
        self.kind = kind  # one of SCALARS keys, or "message"
        self.label = label  # "optional", "repeated" or "map"
        self.ref = ref  # message path for kind == "message"


def die(msg):
    sys.exit(f"protobuf_schema.py: {msg}")


def registry_dir(crate, version):
    hits = sorted(glob.glob(os.path.expanduser(f"~/.cargo/registry/src/*/{crate}-{version}")))
    if not hits:
        die(f"{crate} {version} is not in ~/.cargo/registry/src; pass its directory")
    return hits[0]


def norm(name):
    return name.replace("_", "").lower()


# ---------------------------------------------------------------- k8s-pb


def resolve(module, path):
    """A Rust type path inside k8s-pb, relative to `module`, as a/b/c/Name."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    else:
        base = list(module)
        while parts and parts[0] == "super":
            base.pop()
            parts = parts[1:]
    return "/".join(base + parts)


def innermost(ty):
    ty = ty.strip()
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        if ty.startswith(wrapper) and ty.endswith(">"):
            return innermost(ty[len(wrapper) : -1])
    return ty


def map_value_type(ty):
    m = re.fullmatch(r"::prost::alloc::collections::BTreeMap<(.*)>", ty.strip())
    if not m:
        die(f"unexpected map type {ty}")
    inner = m.group(1)
    depth = 0
    for i, c in enumerate(inner):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "," and depth == 0:
            return inner[i + 1 :].strip().rstrip(",")
    die(f"unexpected map type {ty}")


PROST_ATTR = re.compile(r"#\[prost\((.*)\)\]")


def parse_prost_attr(attr):
    """(label, kind, number) of a #[prost(...)] attribute; a map's kind is its value's."""
    number = int(re.search(r'tag = "(\d+)"', attr).group(1))
    m = re.match(r'btree_map = "string, (\w+)"', attr)
    if m:
        return "map", m.group(1), number
    words = [w.strip() for w in attr.split(",")]
    kind = words[0].split(" ")[0]  # `bytes = "vec"` -> bytes
    if kind not in SCALARS and kind != "message":
        die(f"unsupported prost attribute {attr}")
    label = "repeated" if "repeated" in words else "optional"
    if label == "optional" and "optional" not in words:
        die(f"field without label: {attr}")
    return label, kind, number


def parse_k8s_pb(root):
    messages = {}  # path -> [PbField]
    resources = {}  # path -> (apiVersion, kind)
    for file in sorted(glob.glob(os.path.join(root, "src", "**", "*.rs"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(file), os.path.join(root, "src"))
        if rel == ".":
            continue
        module = rel.split(os.sep)
        lines = open(file, encoding="utf-8").read().split("\n")
        i = 0
        struct = None
        impl = None
        while i < len(lines):
            line = lines[i]
            m = re.match(r"pub struct (\w+) \{", line)
            if m:
                struct = "/".join(module + [m.group(1)])
                messages[struct] = []
                i += 1
                continue
            if struct and line == "}":
                struct = None
            m = re.match(r"impl crate::Resource for (\w+) \{", line)
            if m:
                impl = ["/".join(module + [m.group(1)]), None, None]
            if impl:
                m = re.match(r'\s*const API_VERSION: &\'static str = "(.*)";', line)
                if m:
                    impl[1] = m.group(1)
                m = re.match(r'\s*const KIND: &\'static str = "(.*)";', line)
                if m:
                    impl[2] = m.group(1)
                if line == "}":
                    resources[impl[0]] = (impl[1], impl[2])
                    impl = None
            m = PROST_ATTR.match(line.strip())
            if struct and m:
                label, kind, number = parse_prost_attr(m.group(1))
                # The field: `pub name: type,` possibly over several lines.
                i += 1
                decl = lines[i].strip()
                while not (decl.endswith(",") and decl.count("<") == decl.count(">")):
                    i += 1
                    decl = decl + lines[i].strip()
                # rustfmt leaves a trailing comma in a generic split over lines.
                decl = decl.replace(",>", ">")
                fm = re.fullmatch(r"pub (?:r#)?(\w+):\s*(.*),", decl)
                if not fm:
                    die(f"unparsed field in {struct}: {decl}")
                name, ty = fm.group(1), fm.group(2)
                ref = None
                if label == "map":
                    if kind == "message":
                        ref = resolve(module, map_value_type(ty))
                elif kind == "message":
                    ref = resolve(module, innermost(ty))
                messages[struct].append(PbField(name, number, kind, label, ref))
            i += 1
    return messages, resources


# ---------------------------------------------------------------- k8s-openapi


class OpenApiType:
    def __init__(self):
        self.json = {}  # normalized name -> JSON name
        self.required = set()  # normalized names of required fields


def parse_k8s_openapi(root):
    """Module path/TypeName (lower-cased) -> OpenApiType, merged over all versions."""
    types = {}
    for vdir in sorted(glob.glob(os.path.join(root, "src", "v1_*"))):
        for file in sorted(glob.glob(os.path.join(vdir, "**", "*.rs"), recursive=True)):
            text = open(file, encoding="utf-8").read()
            head = re.match(r"// Generated from definition ([\w.]+)\n", text)
            if not head:
                continue
            type_name = head.group(1).rsplit(".", 1)[1]
            module = os.path.relpath(os.path.dirname(file), vdir).replace(os.sep, "/")
            sm = re.search(r"\npub struct " + type_name + r" \{\n(.*?)\n\}\n", text, re.S)
            if not sm:
                continue  # a newtype or enum: handled as SPECIAL
            fields = {}
            for fm in re.finditer(r"^    pub (?:r#)?(\w+): (.*),$", sm.group(1), re.M):
                fields[fm.group(1)] = fm.group(2)
            t = types.setdefault(f"{module}/{type_name}".lower(), OpenApiType())
            for km in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
                json_name, rust = km.group(1), km.group(2)
                t.json[norm(json_name)] = json_name
                if rust in fields and not fields[rust].startswith("Option<"):
                    t.required.add(norm(json_name))
    return types


# ---------------------------------------------------------------- inputs


def parse_roots(messages, resources):
    text = open(RESOURCE_RS, encoding="utf-8").read()
    body = text[text.index("pub static RESOURCES") :]
    body = body[: body.index("\n];\n")]
    wanted = []
    for m in re.finditer(r'\bcore\(\s*"(\w+)"', body):
        wanted.append(("v1", m.group(1)))
    for m in re.finditer(r'\bgrouped\(\s*("([^"]*)"|\w+),\s*"(\w+)",\s*"(\w+)"', body):
        if m.group(2) is None:
            continue  # a constant: Skiff's own group, which has no protobuf form
        wanted.append((f"{m.group(2)}/{m.group(3)}", m.group(4)))
    by_gvk = {gvk: path for path, gvk in resources.items()}
    roots = []
    for gvk in wanted:
        if gvk not in by_gvk:
            die(f"k8s-pb has no message for {gvk}")
        roots.append((gvk[0], gvk[1], by_gvk[gvk]))
    for api_version, kind, path in EXTRA_ROOTS:
        if path not in messages:
            die(f"k8s-pb has no message {path}")
        roots.append((api_version, kind, path))
    return roots


def parse_pointers(path=POINTERS):
    """{(proto message name, proto field name)} listed in go_pointers.txt."""
    pointers = set()
    if not os.path.exists(path):
        return pointers
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([\w.]+) (\w+)", line)
        if not m:
            die(f"go_pointers.txt:{n}: expected `k8s.io.package.Message field`")
        pointers.add((m.group(1), norm(m.group(2))))
    return pointers


# ---------------------------------------------------------------- the schema


def go_type_names(openapi_root):
    """Module path/TypeName (lower-cased) -> TypeName as Go spells it."""
    names = {}
    src = os.path.join(openapi_root, "src")
    for file in glob.glob(os.path.join(src, "v1_*", "**", "*.rs"), recursive=True):
        with open(file, encoding="utf-8") as fh:
            m = re.match(r"// Generated from definition ([\w.]+)", fh.readline())
        if m:
            parts = os.path.relpath(os.path.dirname(file), src).split(os.sep)[1:]
            name = m.group(1).rsplit(".", 1)[1]
            names["/".join(parts + [name]).lower()] = name
    return names


def proto_name(path, go_names):
    """`k8s.io.api.core.v1.PodSpec`: the message's name in Kubernetes' .proto files."""
    module, name = path.rsplit("/", 1)
    name = go_names.get(path.lower(), name)
    return "k8s.io." + module.replace("/", ".") + "." + name


def const_name(path):
    module, name = path.rsplit("/", 1)
    parts = module.split("/")
    if parts[0] == "api":
        parts = parts[1:]
    elif parts[:2] == ["apimachinery", "pkg"]:
        parts = parts[2:]
        if parts[0] == "apis":
            parts = parts[1:]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return "_".join(parts + [snake]).upper()


class Schema:
    def __init__(self):
        self.messages = []  # (path, proto name, special or None, [SchemaField])
        self.roots = []  # (apiVersion, kind, path)


class SchemaField:
    def __init__(self, number, json_name, ty, card, ref):
        self.number = number
        self.json_name = json_name
        self.ty = ty  # "String", ..., or "Message"
        self.card = card  # "Optional", "Always", "Repeated", "Map" or "Inline"
        self.ref = ref


def build(pb_root, openapi_root, pointers):
    messages, resources = parse_k8s_pb(pb_root)
    openapi = parse_k8s_openapi(openapi_root)
    go_names = go_type_names(openapi_root)
    schema = Schema()
    schema.roots = parse_roots(messages, resources)

    # The closure over message references, sorted by name.
    # The special messages are always in, so that the decoder's support for
    # each is there (and tested) before a served kind needs it.
    seen = set()
    stack = [path for _, _, path in schema.roots] + sorted(SPECIAL)
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        if path not in messages:
            die(f"unknown message {path}")
        seen.add(path)
        if path not in SPECIAL:
            stack.extend(f.ref for f in messages[path] if f.ref)
    order = sorted(seen, key=lambda p: proto_name(p, go_names))

    # An embedded struct that OpenAPI never names on its own (e.g.
    # EphemeralContainerCommon) takes its JSON names from the embedding type.
    for p in order:
        t = openapi.get(p.lower())
        for f in messages[p] if t and p not in SPECIAL else []:
            if f.ref and norm(f.name) not in t.json and f.ref.lower() not in openapi:
                openapi[f.ref.lower()] = t

    for p in order:
        name = proto_name(p, go_names)
        if p in SPECIAL:
            special, numbers = SPECIAL[p]
            have = {f.number: f.name for f in messages[p]}
            if any(have.get(n) != fname for n, fname in numbers.items()):
                die(f"{p}: fields {have} are not the expected {numbers}")
            schema.messages.append((p, name, special, []))
            continue
        t = openapi.get(p.lower())
        if t is None:
            die(f"k8s-openapi has no type for {p}")
        fields = []
        for f in messages[p]:
            key = norm(f.name)
            ty = "Message" if f.kind == "message" else SCALARS[f.kind]
            json_name = t.json.get(key)
            if json_name is None:
                # An embedded struct (`json:",inline"`): its fields must be the parent's.
                if f.label != "optional" or f.kind != "message":
                    die(f"{p}.{f.name}: no JSON name")
                missing = {norm(g.name) for g in messages[f.ref]} - set(t.json)
                if missing:
                    die(f"{p}.{f.name}: no JSON name, and not inline ({missing})")
                card, json_name = "Inline", ""
            elif f.label == "map":
                card = "Map"
            elif f.label == "repeated":
                card = "Repeated"
            elif f.kind != "message" and (key in t.required or (name, key) in pointers):
                card = "Always"
            else:
                card = "Optional"
            fields.append(SchemaField(f.number, json_name, ty, card, f.ref))
        schema.messages.append((p, name, None, fields))
    return schema


def render(schema):
    out = []
    w = out.append
    w("//! Generated by `api/generators/protobuf_schema.py` from k8s-pb " + K8S_PB_VERSION + " (field numbers and")
    w("//! types) and k8s-openapi " + K8S_OPENAPI_VERSION + " (JSON names, required fields), with")
    w("//! `go_pointers.txt` (which zero values are meant). Do not edit.")
    w("")
    w("use crate::protobuf::message::{Card, Message, Special, Ty, field};")
    w("")
    used = {path for _, _, path in schema.roots}
    used |= {f.ref for m in schema.messages for f in m[3] if f.ref}
    for i, (path, _, _, _) in enumerate(schema.messages):
        if path in used:
            w(f"const {const_name(path)}: u16 = {i};")
    w("")
    w("/// Every message of the schema, indexed by the constants above.")
    w("#[rustfmt::skip]")
    w("pub(crate) static MESSAGES: &[Message] = &[")
    for path, name, special, fields in schema.messages:
        if special:
            w(f'    Message {{ name: "{name}", special: Special::{special}, fields: &[] }},')
            continue
        w(f'    Message {{ name: "{name}", special: Special::None, fields: &[')
        for f in fields:
            ty = f"Ty::Message({const_name(f.ref)})" if f.ty == "Message" else f"Ty::{f.ty}"
            w(f'        field({f.number}, "{f.json_name}", {ty}, Card::{f.card}),')
        w("    ] },")
    w("];")
    w("")
    w("/// The message of each kind a request body may carry, by (apiVersion, kind);")
    w("/// an empty apiVersion matches any.")
    w("#[rustfmt::skip]")
    w("pub(crate) static KINDS: &[(&str, &str, u16)] = &[")
    for api_version, kind, path in sorted(schema.roots):
        w(f'    ("{api_version}", "{kind}", {const_name(path)}),')
    w("];")
    w("")
    text = "\n".join(out)
    rustfmt = subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout", "--quiet"],
        input=text,
        capture_output=True,
        text=True,
    )
    if rustfmt.returncode != 0:
        die("rustfmt failed:\n" + rustfmt.stderr)
    return rustfmt.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k8s-pb", default=None)
    ap.add_argument("--k8s-openapi", default=None)
    args = ap.parse_args()
    pb_root = args.k8s_pb or registry_dir("k8s-pb", K8S_PB_VERSION)
    openapi_root = args.k8s_openapi or registry_dir("k8s-openapi", K8S_OPENAPI_VERSION)
    schema = build(pb_root, openapi_root, parse_pointers())
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write(render(schema))
    fields = sum(len(m[3]) for m in schema.messages)
    print(f"wrote {os.path.relpath(OUT)}: {len(schema.messages)} messages, {fields} fields, {len(schema.roots)} kinds")


if __name__ == "__main__":
    main()
