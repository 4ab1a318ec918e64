#!/usr/bin/env python3
"""Generate crates/skiff-api/src/defaults/struct_fields.rs, the fields Go always writes.

Usage (standard library and git only):

    python3 tools/gen_struct_fields.py API_GIT_DIR APIMACHINERY_GIT_DIR [REF] \
        > crates/skiff-api/src/defaults/struct_fields.rs

API_GIT_DIR and APIMACHINERY_GIT_DIR are clones (bare is fine) of github.com/kubernetes/api and
github.com/kubernetes/apimachinery; REF is the tag of both to read (default v0.33.0, the
Kubernetes version skiff serves). The Go types are read with `git show REF:path`.

Upstream writes every object as Go's `encoding/json` encodes its Go struct, after a protobuf
round trip through etcd (so a nil and an empty slice or map are the same: nil). Per field:

  * a struct value (not a pointer) is always written, `omitempty` or not: `{}` when empty,
    with its own always-written fields inside (`"status": {}`, `"resources": {}`,
    `"loadBalancer": {}` ...);
  * metav1.Time and metav1.MicroTime are structs whose MarshalJSON writes `null` when zero
    (`"creationTimestamp": null` in a template's metadata, `"lastProbeTime": null`), and so is
    runtime.RawExtension (`"data": null`);
  * a string, number or bool without `omitempty` is written as its zero value (`""`, `0`,
    `false`), a slice or map without `omitempty` as `null` (`"endpoints": null`);
  * pointers and `omitempty` scalars, slices and maps are omitted when unset.

intstr.IntOrString, resource.Quantity and metav1.Duration are structs too (Go writes `0`,
`"0"` and `"0s"`), but every non-pointer one in a served kind is either defaulted (a Service
port's targetPort) or required by validation (a probe's port), so they are left alone (a
missing one is the validator's to report, not to be hidden behind a zero). Any other type with
its own MarshalJSON reached as a value stops the generator until CUSTOM says what it writes.

Output: one static per Go struct that has something to fill (itself or below it), each a list of
(json name, what to write when absent, how to descend), and KINDS, the root struct of every
top-level kind (a struct with inline metav1.TypeMeta and metav1.ObjectMeta) of the packages
below. skiff-api's tests check that every kind the registry serves has its root here.
"""

import re
import subprocess
import sys

# The served group-versions: (group, version) -> the package's directory in kubernetes/api.
PACKAGES = {
    ("", "v1"): "core/v1",
    ("apps", "v1"): "apps/v1",
    ("batch", "v1"): "batch/v1",
    ("autoscaling", "v1"): "autoscaling/v1",
    ("autoscaling", "v2"): "autoscaling/v2",
    ("policy", "v1"): "policy/v1",
    ("rbac.authorization.k8s.io", "v1"): "rbac/v1",
    ("networking.k8s.io", "v1"): "networking/v1",
    ("discovery.k8s.io", "v1"): "discovery/v1",
    ("coordination.k8s.io", "v1"): "coordination/v1",
    ("events.k8s.io", "v1"): "events/v1",
    ("storage.k8s.io", "v1"): "storage/v1",
    ("scheduling.k8s.io", "v1"): "scheduling/v1",
    ("node.k8s.io", "v1"): "node/v1",
    ("certificates.k8s.io", "v1"): "certificates/v1",
    ("admissionregistration.k8s.io", "v1"): "admissionregistration/v1",
}

API_PREFIX = "k8s.io/api/"
METAV1 = "k8s.io/apimachinery/pkg/apis/meta/v1"

# Go types with their own MarshalJSON, by (import path, name): what a zero value writes, or
# None to leave the field alone (see the docstring).
CUSTOM = {
    (METAV1, "Time"): "Null",
    (METAV1, "MicroTime"): "Null",
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension"): "Null",
    (METAV1, "Duration"): None,
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString"): None,
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity"): None,
}
# Named types of other packages that are plain strings.
STRINGS = {("k8s.io/apimachinery/pkg/types", "UID"), ("k8s.io/apimachinery/pkg/types", "NodeName")}

BASIC_NUMBERS = {
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "byte",
}


class Repo:
    def __init__(self, git_dir, ref):
        self.git_dir, self.ref = git_dir, ref

    def files(self, directory):
        out = subprocess.run(
            ["git", "--git-dir", self.git_dir, "ls-tree", "--name-only", f"{self.ref}:{directory}"],
            check=True, capture_output=True, text=True).stdout
        return [f for f in out.split() if f.endswith(".go") and not f.endswith("_test.go")
                and not f.startswith("zz_generated") and not f.startswith("generated.")
                and "swagger_doc" not in f]

    def show(self, path):
        return subprocess.run(["git", "--git-dir", self.git_dir, "show", f"{self.ref}:{path}"],
                              check=True, capture_output=True, text=True).stdout


class Package:
    """The type declarations of one Go package: structs (fields) and other named types."""

    def __init__(self, path, repo, directory):
        self.path = path
        self.structs = {}   # name -> [(go name, type expr, tag)], in order
        self.named = {}     # name -> underlying type expr
        self.imports = {}   # alias -> import path (per package: api files agree on aliases)
        self.marshalers = set()  # types with their own MarshalJSON
        for f in repo.files(directory):
            self._parse(repo.show(f"{directory}/{f}"))

    def _parse(self, src):
        src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
        lines = [re.sub(r"^\s*//.*$", "", l) for l in src.split("\n")]
        for m in re.finditer(r"^import \(\n(.*?)^\)", "\n".join(lines), re.M | re.S):
            for imp in m.group(1).split("\n"):
                im = re.match(r'\s*(\w+)?\s*"([^"]+)"', imp)
                if im:
                    alias = im.group(1) or im.group(2).rsplit("/", 1)[-1]
                    self.imports[alias] = im.group(2)
        for m in re.finditer(r"^func \(\w+ \*?(\w+)\) MarshalJSON\(", "\n".join(lines), re.M):
            self.marshalers.add(m.group(1))
        for m in re.finditer(r'^import (\w+)? ?"([^"]+)"', "\n".join(lines), re.M):
            self.imports[m.group(1) or m.group(2).rsplit("/", 1)[-1]] = m.group(2)
        i = 0
        while i < len(lines):
            line = lines[i]
            m = re.match(r"^type (\w+) struct \{\s*$", line)
            if m:
                fields, depth, i = [], 1, i + 1
                while depth:
                    body = lines[i].split("//")[0] if "`" not in lines[i] else lines[i]
                    if depth == 1 and body.strip() and body.strip() != "}":
                        fields.append(self._field(body.strip(), m.group(1)))
                    depth += body.count("{") - body.count("}")
                    i += 1
                self.structs[m.group(1)] = fields
                continue
            m = re.match(r"^type (\w+) struct\{\}", line)
            if m:
                self.structs[m.group(1)] = []
            m = re.match(r"^type (\w+) =? ?([^\s{]+)\s*$", line)
            if m:
                self.named[m.group(1)] = m.group(2)
            i += 1

    @staticmethod
    def _field(text, struct):
        m = re.match(r"^([^`]*?)\s*(?:`([^`]*)`)?\s*(?://.*)?$", text)
        words = m.group(1).split() if m else []
        if len(words) not in (1, 2):
            sys.exit(f"cannot read a field of {struct}: {text!r}")
        # One word: an embedded type (its fields are inlined).
        name, ty = (None, words[0]) if len(words) == 1 else words
        return (name, ty, m.group(2) or "")


class Generator:
    def __init__(self, api, machinery):
        self.repos = {"api": api, "machinery": machinery}
        self.packages = {}
        self.structs = {}   # (pkg path, name) -> [Field] once resolved
        self.skipped = set()

    def package(self, path):
        if path not in self.packages:
            if path.startswith(API_PREFIX):
                self.packages[path] = Package(path, self.repos["api"], path[len(API_PREFIX):])
            elif path == METAV1:
                self.packages[path] = Package(path, self.repos["machinery"], "pkg/apis/meta/v1")
            else:
                sys.exit(f"no sources for package {path}")
        return self.packages[path]

    def resolve(self, pkg, ty):
        """A type expression as ("struct", key) | ("custom", zero) | ("scalar", zero) |
        ("slice", elem) | ("map", elem) | ("ptr", elem)."""
        if ty.startswith("*"):
            return ("ptr", self.resolve(pkg, ty[1:]))
        if ty == "[]byte":
            return ("scalar", "String")
        if ty.startswith("[]"):
            return ("slice", self.resolve(pkg, ty[2:]))
        if ty.startswith("map["):
            depth, j = 0, 3
            for j in range(3, len(ty)):
                depth += {"[": 1, "]": -1}.get(ty[j], 0)
                if depth == 0:
                    break
            return ("map", self.resolve(pkg, ty[j + 1:]))
        if ty == "string":
            return ("scalar", "String")
        if ty == "bool":
            return ("scalar", "False")
        if ty in BASIC_NUMBERS:
            return ("scalar", "Number")
        if "." in ty:
            alias, name = ty.split(".", 1)
            path = pkg.imports.get(alias)
            if path is None:
                sys.exit(f"{pkg.path}: unknown import {alias} in {ty}")
            if (path, name) in CUSTOM:
                return ("custom", CUSTOM[(path, name)])
            if (path, name) in STRINGS:
                return ("scalar", "String")
            return self.resolve(self.package(path), name)
        if (pkg.path, ty) in CUSTOM:
            return ("custom", CUSTOM[(pkg.path, ty)])
        if ty in pkg.marshalers:
            # Written by its own MarshalJSON: nothing to say about it unless it is in CUSTOM.
            return ("custom", f"unknown {pkg.path}.{ty}")
        if ty in pkg.structs:
            return ("struct", (pkg.path, ty))
        if ty in pkg.named:
            return self.resolve(pkg, pkg.named[ty])
        sys.exit(f"{pkg.path}: unknown type {ty}")

    def fields(self, key):
        """The JSON fields of a struct, embedded (inline) structs flattened, in order:
        (json name, omitempty, resolved type)."""
        pkg = self.package(key[0])
        out = []
        for name, ty, tag in pkg.structs[key[1]]:
            jm = re.search(r'json:"([^"]*)"', tag)
            json_tag = jm.group(1) if jm else None
            if json_tag == "-":
                continue
            parts = (json_tag or "").split(",")
            resolved = self.resolve(pkg, ty)
            if name is None and not parts[0]:
                # An embedded struct without a JSON name: its fields are the parent's.
                if resolved[0] != "struct":
                    sys.exit(f"{key}: inline field of type {ty}")
                out.extend(self.fields(resolved[1]))
                continue
            name = parts[0] or name or ty.rsplit(".", 1)[-1].lstrip("*")
            out.append((name, "omitempty" in parts[1:], resolved))
        return out

    def roots(self, directory):
        """The top-level kinds of a package: structs with inline TypeMeta and an ObjectMeta."""
        pkg = self.package(API_PREFIX + directory)
        kinds = []
        for name, fields in pkg.structs.items():
            types = [ty for _, ty, _ in fields]
            if "metav1.TypeMeta" in types and "metav1.ObjectMeta" in types:
                kinds.append(name)
        return pkg, sorted(kinds)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    ref = sys.argv[3] if len(sys.argv) == 4 else "v0.33.0"
    gen = Generator(Repo(sys.argv[1], ref), Repo(sys.argv[2], ref))

    # Every struct reachable from a root, with its entries; then keep those with work to do.
    entries = {}   # struct key -> [(json, zero, descend, elem key)]

    def visit(key):
        if key in entries:
            return
        entries[key] = None
        rows = []
        for json_name, omitempty, (kind, elem) in gen.fields(key):
            zero, descend, target = "Keep", None, None
            if kind == "struct":
                zero, descend, target = "Object", "Object", elem
            elif kind == "custom":
                if elem is not None and elem.startswith("unknown "):
                    sys.exit(f"{key[1]}.{json_name}: {elem[8:]} has its own MarshalJSON; "
                             "say in CUSTOM what its zero value is written as")
                if elem is None:
                    gen.skipped.add(f"{key[1]}.{json_name}")
                zero = elem or "Keep"
            elif kind == "scalar":
                zero = "Keep" if omitempty else elem
            elif kind in ("slice", "map"):
                zero = "Keep" if omitempty else "Null"
                inner = elem
                if inner[0] == "ptr":
                    inner = inner[1]
                if inner[0] == "struct":
                    descend, target = ("Each" if kind == "slice" else "Values"), inner[1]
            elif kind == "ptr":
                inner = elem
                if inner[0] == "struct":
                    descend, target = "Object", inner[1]
            if target is not None:
                visit(target)
            rows.append((json_name, zero, descend, target))
        entries[key] = rows

    roots = []
    for (group, version), directory in PACKAGES.items():
        pkg, kinds = gen.roots(directory)
        for kind in kinds:
            visit((pkg.path, kind))
            roots.append((group, version, kind, (pkg.path, kind)))

    # A struct matters when a field fills something or descends into a struct that matters.
    matters = {key: False for key in entries}
    changed = True
    while changed:
        changed = False
        for key, rows in entries.items():
            if matters[key]:
                continue
            if any(z != "Keep" or (t is not None and matters[t]) for _, z, _, t in rows):
                matters[key] = changed = True

    def ident(key):
        short = key[0].replace("k8s.io/api/", "").replace("k8s.io/apimachinery/pkg/apis/", "")
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", key[1])
        return (short.replace("/", "_") + "_" + name).upper()

    def rows_of(key):
        out = []
        for json_name, zero, descend, target in entries[key]:
            useful = target is not None and matters[target]
            if zero == "Keep" and not useful:
                continue
            inner = f"Inner::{descend}(&{ident(target)})" if useful else "Inner::Leaf"
            out.append(f"    Field {{ name: {json_name!r}, zero: Zero::{zero}, inner: {inner} }},"
                       .replace("'", '"'))
        return out

    print("// @generated by tools/gen_struct_fields.py from kubernetes/api and")
    print(f"// kubernetes/apimachinery at {ref}; do not edit. To regenerate, with both repositories")
    print("// cloned (bare is fine):")
    print("//")
    print(f"//     python3 tools/gen_struct_fields.py API_GIT_DIR APIMACHINERY_GIT_DIR {ref} \\")
    print("//         > crates/skiff-api/src/defaults/struct_fields.rs")
    print("//")
    print("// The fields upstream's JSON always carries (struct values as `{}`, zero metav1.Time as")
    print("// `null`, non-omitempty scalars as their zero value and slices and maps as `null`), per Go")
    print("// struct, and the root struct of every top-level kind. Non-pointer intstr.IntOrString,")
    print("// resource.Quantity and metav1.Duration fields are left alone (defaulted or required):")
    for line in sorted(gen.skipped):
        print(f"// {line}")
    print()
    print("use super::go_fields::{Field, Inner, Zero};")
    print()
    print("/// (group, version, kind) -> the fields of the kind's Go struct.")
    print("pub(super) static KINDS: &[(&str, &str, &str, &[Field])] = &[")
    for group, version, kind, key in sorted(roots):
        body = f"&{ident(key)}" if matters[key] else "&[]"
        print(f'    ("{group}", "{version}", "{kind}", {body}),')
    print("];")
    for key in sorted(k for k in entries if matters[k]):
        rows = rows_of(key)
        print()
        print(f"/// `{key[0]}.{key[1]}`")
        print(f"static {ident(key)}: [Field; {len(rows)}] = [")
        for r in rows:
            print(r)
        print("];")


if __name__ == "__main__":
    main()
