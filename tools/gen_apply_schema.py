#!/usr/bin/env python3
"""Generate crates/skiff-api/src/apply/schema_table.rs, the structured-merge schema table.

Usage (standard library only):

    python3 tools/gen_apply_schema.py ~/.cargo/registry/src/index.crates.io-*/k8s-openapi-0.29.0/src/v1_33 \
        > crates/skiff-api/src/apply/schema_table.rs

Input: k8s-openapi's generated sources for one Kubernetes version. Their `DeepMerge` impls encode
upstream's `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` per
field:

    crate::merge_strategies::list::map(&mut self.containers, other.containers,
        &[|lhs, rhs| lhs.name == rhs.name], ...)      -> list map keyed by `name`
    crate::merge_strategies::list::set(...)           -> list set
    crate::merge_strategies::list::atomic(...)        -> atomic list
    crate::merge_strategies::map::atomic(...)         -> atomic map
    crate::merge_strategies::map::granular(...)       -> granular map (the default; not emitted)

Each struct is named by its OpenAPI schema name (`fn schema_name`), each field and each list-map key
by its JSON name (the string literals of the `Deserialize` impl).

What k8s-openapi does not carry is added from the OVERRIDES below, each checked against upstream's
Go markers (`staging/src/k8s.io/api/.../types.go`):
  * list-map keys it drops (it keeps only the strategic-merge `patchMergeKey` when a list has one,
    so `Container.ports` is keyed by `containerPort` alone where upstream keys by
    `containerPort` and `protocol`), with the keys' defaults (`protocol` defaults to `TCP`);
  * `+structType=atomic` structs (`x-kubernetes-map-type: atomic` on the definition), which have
    no `DeepMerge` trace at all.
"""

import os
import re
import sys

# (schema, field) -> upstream's full list of list-map keys.
KEY_OVERRIDES = {
    ("io.k8s.api.core.v1.Container", "ports"): ["containerPort", "protocol"],
    ("io.k8s.api.core.v1.EphemeralContainer", "ports"): ["containerPort", "protocol"],
    ("io.k8s.api.core.v1.ServiceSpec", "ports"): ["port", "protocol"],
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints"): ["topologyKey", "whenUnsatisfiable"],
}

# Defaults of optional list-map keys: (item schema, key) -> JSON value.
KEY_DEFAULTS = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): '"TCP"',
    ("io.k8s.api.core.v1.ServicePort", "protocol"): '"TCP"',
}

# Upstream's `+structType=atomic` types (replaced as a whole, never merged field by field).
ATOMIC_STRUCTS = [
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.TypedObjectReference",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.ScopeSelector",
]

FIELD_ARM = re.compile(r'"([^"]+)" => Field::Key_(\w+),')
SCHEMA_NAME = re.compile(r'fn schema_name\(\) -> [^{]*\{\s*"([^"]+)"\.into\(\)')
STRUCT = re.compile(r'pub struct (\w+)(?:<[^>]*>)? \{(.*?)\n\}', re.S)
FIELD_DECL = re.compile(r'\n    pub (\w+): (.+?),\n')
STRATEGY = re.compile(
    r'crate::merge_strategies::(list|map)::(atomic|set|map|granular)\(\s*&mut self\.(\w+),\s*other\.\w+'
    r'(?:,\s*&\[(.*?)\])?', re.S)
KEY = re.compile(r'lhs\.(\w+) == rhs\.\w+')
CRATE_PATH = re.compile(r'crate::((?:\w+::)*)(\w+)')


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    types = {}  # rust path (api::core::v1::Container) -> info
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith('.rs') or f == 'mod.rs':
                continue
            src = open(os.path.join(dirpath, f), encoding='utf-8').read()
            m = STRUCT.search(src)
            name = SCHEMA_NAME.search(src)
            if not m or not name:
                continue
            module = os.path.relpath(dirpath, root).replace(os.sep, '::')
            fields = dict((rust, json) for json, rust in FIELD_ARM.findall(src))
            decls = dict(FIELD_DECL.findall(m.group(2) + '\n'))
            types[f'{module}::{m.group(1)}'] = {
                'schema': name.group(1), 'src': src, 'json': fields, 'decls': decls,
            }

    rows = []
    for info in types.values():
        src = info['src']
        start = src.find('impl crate::DeepMerge for')
        if start < 0:
            continue
        body = src[start:src.find('\n}\n', start)]
        for kind, strategy, field, keys in STRATEGY.findall(body):
            if kind == 'map' and strategy == 'granular':
                continue  # the default
            json = info['json'].get(field)
            if json is None:
                sys.exit(f"{info['schema']}: no JSON name for field {field}")
            if kind == 'list' and strategy == 'map':
                item = item_type(types, info['decls'].get(field, ''))
                if item is None:
                    sys.exit(f"{info['schema']}.{json}: no item type")
                key_names = []
                for k in KEY.findall(keys):
                    kj = item['json'].get(k)
                    if kj is None:
                        sys.exit(f"{info['schema']}.{json}: no JSON name for key {k}")
                    key_names.append(kj)
                key_names = KEY_OVERRIDES.get((info['schema'], json), key_names)
                keyed = ', '.join(
                    f'("{k}", {rust_default(KEY_DEFAULTS.get((item["schema"], k)))})' for k in key_names)
                value = f'Strategy::ListMap(&[{keyed}])'
            else:
                value = {
                    ('list', 'atomic'): 'Strategy::ListAtomic',
                    ('list', 'set'): 'Strategy::ListSet',
                    ('map', 'atomic'): 'Strategy::MapAtomic',
                }[(kind, strategy)]
            rows.append((info['schema'], json, value))
    rows.sort()
    used = {(s, f) for s, f, _ in rows}
    for key in KEY_OVERRIDES:
        if key not in used:
            sys.exit(f'override {key} matches no list map')

    out = sys.stdout
    out.write('// @generated by tools/gen_apply_schema.py from k8s-openapi 0.29 (v1_33); do not edit.\n')
    out.write('// Regenerate with:\n')
    out.write('//   python3 tools/gen_apply_schema.py \\\n')
    out.write('//     ~/.cargo/registry/src/index.crates.io-*/k8s-openapi-0.29.0/src/v1_33 \\\n')
    out.write('//     > crates/skiff-api/src/apply/schema_table.rs\n\n')
    out.write('use super::schema::Strategy;\n\n')
    out.write('/// The merge strategy of every list and non-granular map field, by (schema, JSON field),\n')
    out.write('/// sorted. Fields not listed are granular maps or (lists) atomic.\n')
    out.write('#[rustfmt::skip]\n')
    out.write('pub(super) static FIELDS: &[(&str, &str, Strategy)] = &[\n')
    for schema, field, value in rows:
        out.write(f'    ("{schema}", "{field}", {value}),\n')
    out.write('];\n\n')
    out.write('/// Structs upstream marks `+structType=atomic`: owned and replaced as a whole.\n')
    out.write('#[rustfmt::skip]\n')
    out.write('pub(super) static ATOMIC_STRUCTS: &[&str] = &[\n')
    for s in sorted(ATOMIC_STRUCTS):
        out.write(f'    "{s}",\n')
    out.write('];\n')


def item_type(types, decl):
    inner = decl[decl.find('Vec<'):] if 'Vec<' in decl else ''
    m = CRATE_PATH.search(inner)
    if not m:
        return None
    return types.get(m.group(1) + m.group(2))


def rust_default(value):
    if value is None:
        return 'None'
    escaped = value.replace('\\', '\\\\').replace('"', '\\"')
    return f'Some("{escaped}")'


if __name__ == '__main__':
    main()
