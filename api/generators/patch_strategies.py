#!/usr/bin/env python3
"""Generates api/src/generated/patch_strategies.rs: the strategic-merge /
server-side-apply schema table (its types are in api/src/patch/strategic/schema.rs).

Reads the k8s-openapi 0.29 sources (feature v1_33) from the cargo registry: each
struct's fields, their JSON names and the `DeepMerge` strategy of every list and
map (`merge_strategies::list::{atomic,set,map}`, `map::{atomic,granular}`), which
k8s-openapi derives from the OpenAPI `x-kubernetes-*` extensions. The overrides
below record what those extensions do not carry (Go `patchStrategy` tags that
differ from the list type, `retainKeys`, `+structType=atomic`, multi-field list
map keys).

Usage: python3 api/generators/patch_strategies.py > api/src/generated/patch_strategies.rs
&& rustfmt --edition 2024 api/src/generated/patch_strategies.rs
"""
import glob
import os
import re
ROOT = glob.glob(os.path.expanduser('~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33'))[0]

types = {}  # 'api::core::v1::Container' -> dict

def parse(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace('/', '::')
    src = open(path).read()
    m = re.search(r'pub struct (\w+) \{(.*?)\n\}', src, re.S)
    if not m: return
    name = m.group(1)
    mod = '::'.join(rel.split('::')[:-1])
    full = mod + '::' + name
    fields = {}
    for fm in re.finditer(r'\n    pub (\w+): (.+?),\n', m.group(2) + '\n'):
        fields[fm.group(1)] = fm.group(2)
    jsonnames = {}
    for jm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', src):
        jsonnames[jm.group(2)] = jm.group(1)
    strategies = {}
    mm = re.search(r'fn merge_from\(&mut self, other: Self\) \{(.*?)\n    \}\n', src, re.S)
    body = mm.group(1) if mm else ''
    for sm in re.finditer(r'merge_strategies::list::(atomic|set)\(&mut self\.(\w+)', body):
        strategies[sm.group(2)] = ('list', sm.group(1))
    for sm in re.finditer(r'merge_strategies::list::map\(\s*&mut self\.(\w+),\s*other\.\w+,\s*&\[(.*?)\],', body, re.S):
        keys = re.findall(r'lhs\.(\w+) ==', sm.group(2))
        strategies[sm.group(1)] = ('list', 'map', keys)
    for sm in re.finditer(r'merge_strategies::map::(atomic|granular)\(&mut self\.(\w+)', body):
        strategies[sm.group(2)] = ('map', sm.group(1))
    types[full] = dict(name=name, fields=fields, json=jsonnames, strat=strategies)

for p in glob.glob(ROOT + '/**/*.rs', recursive=True):
    parse(p)

def ref_type(t):
    m = re.search(r'crate::([\w:]+)', t)
    if m and m.group(1) in types:
        return m.group(1)
    return None

roots = {
 'Namespace':'api::core::v1::Namespace','Node':'api::core::v1::Node','Pod':'api::core::v1::Pod',
 'Service':'api::core::v1::Service','Endpoints':'api::core::v1::Endpoints','Event':'api::core::v1::Event',
 'ConfigMap':'api::core::v1::ConfigMap','Secret':'api::core::v1::Secret','ServiceAccount':'api::core::v1::ServiceAccount',
 'PersistentVolume':'api::core::v1::PersistentVolume','PersistentVolumeClaim':'api::core::v1::PersistentVolumeClaim',
 'ResourceQuota':'api::core::v1::ResourceQuota','LimitRange':'api::core::v1::LimitRange',
 'Deployment':'api::apps::v1::Deployment','ReplicaSet':'api::apps::v1::ReplicaSet','DaemonSet':'api::apps::v1::DaemonSet',
 'StatefulSet':'api::apps::v1::StatefulSet','Job':'api::batch::v1::Job','CronJob':'api::batch::v1::CronJob',
 'HorizontalPodAutoscaler':'api::autoscaling::v2::HorizontalPodAutoscaler','Ingress':'api::networking::v1::Ingress',
 'IngressClass':'api::networking::v1::IngressClass','EndpointSlice':'api::discovery::v1::EndpointSlice',
 'Lease':'api::coordination::v1::Lease','Role':'api::rbac::v1::Role','RoleBinding':'api::rbac::v1::RoleBinding',
 'ClusterRole':'api::rbac::v1::ClusterRole','ClusterRoleBinding':'api::rbac::v1::ClusterRoleBinding',
}

# Go struct types marked `+structType=atomic` that our kinds reach: server-side
# apply owns them as a whole.
ATOMIC_STRUCTS = {
    'apimachinery::pkg::apis::meta::v1::LabelSelector',
    'apimachinery::pkg::apis::meta::v1::OwnerReference',
    'api::core::v1::LocalObjectReference', 'api::core::v1::ObjectReference',
    'api::core::v1::TypedLocalObjectReference', 'api::core::v1::ConfigMapKeySelector',
    'api::core::v1::SecretKeySelector', 'api::core::v1::ObjectFieldSelector',
    'api::core::v1::ResourceFieldSelector', 'api::core::v1::NodeSelector',
    'api::core::v1::NodeSelectorTerm', 'api::core::v1::TopologySelectorTerm',
    'api::core::v1::SecretReference',
}
# (Type.field) -> overrides
# Lists k8s-openapi merges by key that carry no `patchStrategy` tag in Go: a
# strategic merge patch replaces them whole.
SMP_ATOMIC = {'ResourceRequirements.claims', 'UncountedTerminatedPods.failed',
              'UncountedTerminatedPods.succeeded', 'StatefulSetSpec.volumeClaimTemplates'}
# `patchStrategy:"...,retainKeys"` / `patchStrategy:"retainKeys"` in Go.
RETAIN_KEYS = {'PodSpec.volumes', 'PodSpec.resourceClaims', 'PodStatus.resourceClaimStatuses',
               'DeploymentSpec.strategy'}
# `+listMapKey` lists where k8s-openapi only kept the patch merge key.
SSA_KEYS = {
    'Container.ports': ['containerPort', 'protocol=TCP'],
    'EphemeralContainer.ports': ['containerPort', 'protocol=TCP'],
    'ServiceSpec.ports': ['port', 'protocol=TCP'],
    'PodSpec.topologySpreadConstraints': ['topologyKey', 'whenUnsatisfiable'],
}
SSA_ATOMIC = {'JobStatus.conditions', 'StatefulSetSpec.volumeClaimTemplates'}

def const_name(full):
    n = full.split('::')[-1]
    return re.sub(r'(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])', '_', n).upper()

emitted = {}   # full -> rust name or None (not interesting)
order = []

def field_info(full):
    """Returns list of (json, shape_src) for interesting fields, or None if not interesting."""
    if full in emitted:
        return emitted[full]
    emitted[full] = 'PENDING'
    ty = types[full]
    short = ty['name']
    out = []
    for f, ftype in sorted(ty['fields'].items(), key=lambda kv: ty['json'].get(kv[0], kv[0])):
        jn = ty['json'].get(f, f)
        s = ty['strat'].get(f)
        sub = ref_type(ftype)
        key = short + '.' + jn
        if s and s[0] == 'list':
            item = None
            item_atomic = sub in ATOMIC_STRUCTS if sub else False
            if sub and not item_atomic and field_info(sub):
                item = const_name(sub)
            # strategic
            if s[1] == 'map' and key not in SMP_ATOMIC:
                keys = [types[sub]['json'].get(k, k) for k in s[2]]
                assert len(keys) == 1, key
                smp = f'Strategy::MergeByKey("{keys[0]}")'
            elif s[1] == 'set' and key not in SMP_ATOMIC:
                smp = 'Strategy::MergeSet'
            else:
                smp = 'Strategy::Replace'
            # server-side apply
            if key in SSA_ATOMIC or s[1] == 'atomic':
                ssa = 'ListType::Atomic'
            elif s[1] == 'set':
                ssa = 'ListType::Set'
            else:
                keys = SSA_KEYS.get(key) or [types[sub]['json'].get(k, k) for k in s[2]]
                def k(spec):
                    name, _, default = spec.partition('=')
                    return f'Key::defaulted("{name}", "{default}")' if default else f'Key::required("{name}")'
                ssa = 'ListType::Map(&[' + ', '.join(k(x) for x in keys) + '])'
            if smp == 'Strategy::Replace' and ssa == 'ListType::Atomic':
                continue
            shape = (f'Shape::List(List {{ strategy: {smp}, retain_keys: {str(key in RETAIN_KEYS).lower()}, '
                     f'list_type: {ssa}, item_atomic: {str(item_atomic).lower()}, item: '
                     + (f'Some(&{item})' if item else 'None') + ' })')
            out.append((jn, shape))
        elif s and s[0] == 'map':
            if s[1] == 'atomic':
                out.append((jn, 'Shape::Atomic'))
        elif sub:
            if sub in ATOMIC_STRUCTS:
                out.append((jn, 'Shape::Atomic'))
            elif field_info(sub):
                out.append((jn, f'Shape::Struct {{ retain_keys: {str(key in RETAIN_KEYS).lower()}, ty: &{const_name(sub)} }}'))
            elif key in RETAIN_KEYS:
                out.append((jn, f'Shape::Struct {{ retain_keys: true, ty: &EMPTY }}'))
    res = out or None
    emitted[full] = res
    if res:
        order.append(full)
    return res

for k, r in roots.items():
    field_info(r)

# Keep only the types reachable from a root through emitted shapes.
by_const = {const_name(f): f for f in order}
reach = set()
def mark(full):
    if full in reach: return
    reach.add(full)
    for _, shape in emitted[full]:
        for c in re.findall(r'&([A-Z_]+)\b', shape):
            if c in by_const: mark(by_const[c])
for r in roots.values():
    if r in order: mark(r)
order = [f for f in order if f in reach]
names = [const_name(f) for f in order]
assert len(names) == len(set(names)), names
print('''//! Generated by `api/generators/patch_strategies.py` from k8s-openapi 0.29
//! (v1_33) plus the overrides listed there: the patch strategies of every type
//! reachable from the kinds Skiff serves. Only fields that need more than the
//! default treatment are listed. Do not edit.

use crate::patch::strategic::schema::{
    EMPTY, Key, List, ListType, Shape, Strategy, Type,
};
''')
for full in sorted(order, key=const_name):
    print(f'/// `{full.replace("::", ".")}`')
    vis = 'pub(crate) ' if const_name(full) == 'OBJECT_META' else ''
    print(f'{vis}static {const_name(full)}: Type = Type {{')
    print('    fields: &[')
    for jn, shape in emitted[full]:
        print(f'        ("{jn}", {shape}),')
    print('    ],')
    print('};\n')
print('/// The root type of each kind Skiff serves from `k8s.io/api`.')
print('pub(crate) static ROOTS: &[(&str, &str, &Type)] = &[')
for k, r in roots.items():
    grp = {'core': '', 'apps': 'apps', 'batch': 'batch', 'autoscaling': 'autoscaling', 'networking': 'networking.k8s.io',
           'discovery': 'discovery.k8s.io', 'coordination': 'coordination.k8s.io', 'rbac': 'rbac.authorization.k8s.io'}[r.split('::')[1]]
    if r in order:
        print(f'    ("{grp}", "{k}", &{const_name(r)}),')
    else:
        print(f'    ("{grp}", "{k}", &OBJECT),')
print('];')
