#!/usr/bin/env python3
"""Generate crates/skiff-api/src/protobuf/schema.rs, the Kubernetes protobuf schema table.

Usage (standard library only):

    python3 tools/gen_proto_schema.py ~/.cargo/registry/src/index.crates.io-*/k8s-pb-0.9.0/src \
        > crates/skiff-api/src/protobuf/schema.rs

Inputs:
  * k8s-pb's prost-generated structs (the argument): per module (`api/core/v1/mod.rs` is the proto
    package `k8s.io.api.core.v1`), every `pub struct` with its `#[prost(...)]` field attributes
    (wire type, tag, repeated/optional, map key/value types) and the Rust field type (which message
    a message-typed field refers to).
  * k8s-openapi 0.29's generated sources (found next to k8s-pb in the same registry directory, or
    given with --openapi DIR): the exact JSON field names (string literals of the Deserialize impl),
    the exact proto/Go message names ("Generated from definition io.k8s...."), and the `required`
    fields (serialized by Go without `omitempty`).

prost snake_cases proto field names (`clusterIPs` -> `cluster_i_ps`); the JSON name is recovered by
matching the normalized name (lowercase, no underscores) against k8s-openapi's field names of the
same message, falling back to the first word of the field's doc comment.  Every field of every
emitted message must get a JSON name, or the generator fails.

Only messages reachable from the top-level kinds of the API groups in GROUPS (plus EXTRA_KINDS and
the meta/v1 option types) are emitted.
"""

import argparse
import glob
import os
import re
import sys

GROUPS = [
    "core/v1",
    "apps/v1",
    "batch/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "policy/v1",
    "rbac/v1",
    "networking/v1",
    "discovery/v1",
    "coordination/v1",
    "events/v1",
    "storage/v1",
    "scheduling/v1",
    "node/v1",
    "certificates/v1",
    "admissionregistration/v1",
    "authentication/v1",
    "authorization/v1",
]

# Kinds sent by typed clients that k8s-pb does not mark as `Resource` (subresource bodies).
# (apiVersion, kind, module, message)
EXTRA_KINDS = [
    ("authentication.k8s.io/v1", "TokenRequest", "api/authentication/v1", "TokenRequest"),
    ("policy/v1", "Eviction", "api/policy/v1", "Eviction"),
    ("autoscaling/v1", "Scale", "api/autoscaling/v1", "Scale"),
    ("v1", "Binding", "api/core/v1", "Binding"),
]

# meta/v1 kinds a client may send under any group version (e.g. a DeleteOptions body for
# apps/v1); the decoder falls back to these by kind.  (kind, message)
# (Create/Update/PatchOptions are query parameters, never bodies.)
META_KINDS = ["DeleteOptions", "Status"]

META = "apimachinery/pkg/apis/meta/v1"

# Messages the decoder renders specially (as the Go JSON marshalers of these types do).
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawJson",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
}

# Scalar fields that are Go pointers (`*int32`, `*bool`, `*string`, ...) in k8s.io/api, for which
# the Go JSON encoding shows an explicit zero value (`replicas: 0`, `automountServiceAccountToken:
# false`, `storageClassName: ""`).  Go's protobuf encoder writes every non-pointer scalar field
# even when it is zero (`generateName: ""`, `hostPort: 0`, `stdin: false`), and `omitempty` drops
# those from JSON, so the decoder omits zero scalars unless listed here or required.
# Entries: "<package-relative message>.<jsonName>"; every entry must exist (checked).
POINTER_SCALARS = """
meta.v1.ObjectMeta.deletionGracePeriodSeconds
meta.v1.ListMeta.remainingItemCount
meta.v1.DeleteOptions.gracePeriodSeconds
meta.v1.DeleteOptions.orphanDependents
meta.v1.DeleteOptions.propagationPolicy
meta.v1.DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential
meta.v1.OwnerReference.controller
meta.v1.OwnerReference.blockOwnerDeletion
meta.v1.Preconditions.uid
meta.v1.Preconditions.resourceVersion
core.v1.PodSpec.terminationGracePeriodSeconds
core.v1.PodSpec.activeDeadlineSeconds
core.v1.PodSpec.automountServiceAccountToken
core.v1.PodSpec.shareProcessNamespace
core.v1.PodSpec.priority
core.v1.PodSpec.runtimeClassName
core.v1.PodSpec.enableServiceLinks
core.v1.PodSpec.preemptionPolicy
core.v1.PodSpec.setHostnameAsFQDN
core.v1.PodSpec.hostUsers
core.v1.PodSpec.hostnameOverride
core.v1.PodDNSConfigOption.value
core.v1.PodResourceClaimStatus.resourceClaimName
core.v1.FCVolumeSource.lun
core.v1.PortStatus.error
core.v1.EndpointAddress.nodeName
core.v1.VolumeMountStatus.recursiveReadOnly
core.v1.Container.restartPolicy
core.v1.EphemeralContainerCommon.restartPolicy
core.v1.Probe.terminationGracePeriodSeconds
core.v1.SecurityContext.privileged
core.v1.SecurityContext.runAsUser
core.v1.SecurityContext.runAsGroup
core.v1.SecurityContext.runAsNonRoot
core.v1.SecurityContext.readOnlyRootFilesystem
core.v1.SecurityContext.allowPrivilegeEscalation
core.v1.SecurityContext.procMount
core.v1.PodSecurityContext.runAsUser
core.v1.PodSecurityContext.runAsGroup
core.v1.PodSecurityContext.runAsNonRoot
core.v1.PodSecurityContext.fsGroup
core.v1.PodSecurityContext.fsGroupChangePolicy
core.v1.PodSecurityContext.supplementalGroupsPolicy
core.v1.PodSecurityContext.seLinuxChangePolicy
core.v1.WindowsSecurityContextOptions.gmsaCredentialSpecName
core.v1.WindowsSecurityContextOptions.gmsaCredentialSpec
core.v1.WindowsSecurityContextOptions.runAsUserName
core.v1.WindowsSecurityContextOptions.hostProcess
core.v1.SeccompProfile.localhostProfile
core.v1.AppArmorProfile.localhostProfile
core.v1.Toleration.tolerationSeconds
core.v1.ServiceAccount.automountServiceAccountToken
core.v1.ServiceSpec.allocateLoadBalancerNodePorts
core.v1.ServiceSpec.loadBalancerClass
core.v1.ServiceSpec.internalTrafficPolicy
core.v1.ServiceSpec.ipFamilyPolicy
core.v1.ServiceSpec.trafficDistribution
core.v1.ServicePort.appProtocol
core.v1.ClientIPConfig.timeoutSeconds
core.v1.EndpointPort.appProtocol
core.v1.PersistentVolumeClaimSpec.storageClassName
core.v1.PersistentVolumeClaimSpec.volumeMode
core.v1.PersistentVolumeClaimSpec.volumeAttributesClassName
core.v1.PersistentVolumeSpec.volumeMode
core.v1.PersistentVolumeSpec.volumeAttributesClassName
core.v1.PersistentVolumeClaimStatus.currentVolumeAttributesClassName
core.v1.LoadBalancerIngress.ipMode
core.v1.ConfigMap.immutable
core.v1.Secret.immutable
core.v1.ConfigMapVolumeSource.defaultMode
core.v1.ConfigMapVolumeSource.optional
core.v1.SecretVolumeSource.defaultMode
core.v1.SecretVolumeSource.optional
core.v1.ProjectedVolumeSource.defaultMode
core.v1.DownwardAPIVolumeSource.defaultMode
core.v1.DownwardAPIVolumeFile.mode
core.v1.KeyToPath.mode
core.v1.ConfigMapProjection.optional
core.v1.SecretProjection.optional
core.v1.ServiceAccountTokenProjection.expirationSeconds
core.v1.ClusterTrustBundleProjection.name
core.v1.ClusterTrustBundleProjection.signerName
core.v1.ClusterTrustBundleProjection.optional
core.v1.ConfigMapKeySelector.optional
core.v1.FileKeySelector.optional
core.v1.NodeFeatures.supplementalGroupsPolicy
core.v1.NodeRuntimeHandlerFeatures.recursiveReadOnlyMounts
core.v1.NodeRuntimeHandlerFeatures.userNamespaces
core.v1.PodCertificateProjection.maxExpirationSeconds
core.v1.SecretKeySelector.optional
core.v1.ConfigMapEnvSource.optional
core.v1.SecretEnvSource.optional
core.v1.VolumeMount.recursiveReadOnly
core.v1.CSIVolumeSource.readOnly
core.v1.CSIVolumeSource.fsType
core.v1.HostPathVolumeSource.type
core.v1.ISCSIVolumeSource.initiatorName
core.v1.ISCSIPersistentVolumeSource.initiatorName
core.v1.LocalVolumeSource.fsType
core.v1.AzureDiskVolumeSource.cachingMode
core.v1.AzureDiskVolumeSource.fsType
core.v1.AzureDiskVolumeSource.readOnly
core.v1.AzureDiskVolumeSource.kind
core.v1.AzureFilePersistentVolumeSource.secretNamespace
core.v1.NodeSwapStatus.capacity
core.v1.ContainerStatus.started
core.v1.ContainerStatus.stopSignal
core.v1.Lifecycle.stopSignal
core.v1.ContainerStateTerminated.exitCode
core.v1.ReplicationControllerSpec.replicas
core.v1.GRPCAction.service
core.v1.TopologySpreadConstraint.minDomains
core.v1.TopologySpreadConstraint.nodeAffinityPolicy
core.v1.TopologySpreadConstraint.nodeTaintsPolicy
core.v1.PodResourceClaim.resourceClaimName
core.v1.PodResourceClaim.resourceClaimTemplateName
core.v1.TypedLocalObjectReference.apiGroup
core.v1.TypedObjectReference.apiGroup
core.v1.TypedObjectReference.namespace
apps.v1.DeploymentSpec.replicas
apps.v1.DeploymentSpec.revisionHistoryLimit
apps.v1.DeploymentSpec.progressDeadlineSeconds
apps.v1.DeploymentStatus.collisionCount
apps.v1.DeploymentStatus.terminatingReplicas
apps.v1.ReplicaSetSpec.replicas
apps.v1.ReplicaSetStatus.terminatingReplicas
apps.v1.StatefulSetSpec.replicas
apps.v1.StatefulSetSpec.revisionHistoryLimit
apps.v1.StatefulSetStatus.collisionCount
apps.v1.RollingUpdateStatefulSetStrategy.partition
apps.v1.StatefulSetOrdinals.start
apps.v1.DaemonSetSpec.revisionHistoryLimit
apps.v1.DaemonSetStatus.collisionCount
batch.v1.JobSpec.parallelism
batch.v1.JobSpec.completions
batch.v1.JobSpec.activeDeadlineSeconds
batch.v1.JobSpec.backoffLimit
batch.v1.JobSpec.backoffLimitPerIndex
batch.v1.JobSpec.maxFailedIndexes
batch.v1.JobSpec.manualSelector
batch.v1.JobSpec.ttlSecondsAfterFinished
batch.v1.JobSpec.completionMode
batch.v1.JobSpec.suspend
batch.v1.JobSpec.podReplacementPolicy
batch.v1.JobSpec.managedBy
batch.v1.JobStatus.failedIndexes
batch.v1.JobStatus.terminating
batch.v1.JobStatus.ready
batch.v1.PodFailurePolicyOnExitCodesRequirement.containerName
batch.v1.CronJobSpec.timeZone
batch.v1.CronJobSpec.startingDeadlineSeconds
batch.v1.CronJobSpec.suspend
batch.v1.CronJobSpec.successfulJobsHistoryLimit
batch.v1.CronJobSpec.failedJobsHistoryLimit
batch.v1.SuccessPolicyRule.succeededIndexes
batch.v1.SuccessPolicyRule.succeededCount
autoscaling.v1.HorizontalPodAutoscalerSpec.minReplicas
autoscaling.v1.HorizontalPodAutoscalerSpec.targetCPUUtilizationPercentage
autoscaling.v1.HorizontalPodAutoscalerStatus.observedGeneration
autoscaling.v1.HorizontalPodAutoscalerStatus.currentCPUUtilizationPercentage
autoscaling.v2.HorizontalPodAutoscalerSpec.minReplicas
autoscaling.v2.HorizontalPodAutoscalerStatus.observedGeneration
autoscaling.v2.HPAScalingRules.stabilizationWindowSeconds
autoscaling.v2.HPAScalingRules.selectPolicy
autoscaling.v2.MetricTarget.averageUtilization
autoscaling.v2.MetricValueStatus.averageUtilization
policy.v1.PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy
networking.v1.IngressSpec.ingressClassName
networking.v1.HTTPIngressPath.pathType
networking.v1.IngressClassParametersReference.apiGroup
networking.v1.IngressClassParametersReference.scope
networking.v1.IngressClassParametersReference.namespace
networking.v1.IngressPortStatus.error
networking.v1.NetworkPolicyPort.endPort
networking.v1.NetworkPolicyPort.protocol
discovery.v1.Endpoint.hostname
discovery.v1.Endpoint.nodeName
discovery.v1.Endpoint.zone
discovery.v1.EndpointConditions.ready
discovery.v1.EndpointConditions.serving
discovery.v1.EndpointConditions.terminating
discovery.v1.EndpointPort.name
discovery.v1.EndpointPort.protocol
discovery.v1.EndpointPort.port
discovery.v1.EndpointPort.appProtocol
coordination.v1.LeaseSpec.holderIdentity
coordination.v1.LeaseSpec.leaseDurationSeconds
coordination.v1.LeaseSpec.leaseTransitions
coordination.v1.LeaseSpec.strategy
coordination.v1.LeaseSpec.preferredHolder
events.v1.EventSeries.count
storage.v1.StorageClass.reclaimPolicy
storage.v1.StorageClass.allowVolumeExpansion
storage.v1.StorageClass.volumeBindingMode
storage.v1.CSIDriverSpec.attachRequired
storage.v1.CSIDriverSpec.podInfoOnMount
storage.v1.CSIDriverSpec.storageCapacity
storage.v1.CSIDriverSpec.fsGroupPolicy
storage.v1.CSIDriverSpec.requiresRepublish
storage.v1.CSIDriverSpec.seLinuxMount
storage.v1.CSIDriverSpec.serviceAccountTokenInSecrets
storage.v1.CSIDriverSpec.nodeAllocatableUpdatePeriodSeconds
storage.v1.TokenRequest.expirationSeconds
storage.v1.VolumeAttachmentSource.persistentVolumeName
storage.v1.VolumeNodeResources.count
storage.v1.VolumeError.errorCode
scheduling.v1.PriorityClass.preemptionPolicy
certificates.v1.CertificateSigningRequestSpec.expirationSeconds
admissionregistration.v1.ValidatingWebhook.failurePolicy
admissionregistration.v1.ValidatingWebhook.matchPolicy
admissionregistration.v1.ValidatingWebhook.sideEffects
admissionregistration.v1.ValidatingWebhook.timeoutSeconds
admissionregistration.v1.MutatingWebhook.failurePolicy
admissionregistration.v1.MutatingWebhook.matchPolicy
admissionregistration.v1.MutatingWebhook.sideEffects
admissionregistration.v1.MutatingWebhook.timeoutSeconds
admissionregistration.v1.MutatingWebhook.reinvocationPolicy
admissionregistration.v1.WebhookClientConfig.url
admissionregistration.v1.ServiceReference.path
admissionregistration.v1.ServiceReference.port
admissionregistration.v1.Rule.scope
admissionregistration.v1.MatchResources.matchPolicy
admissionregistration.v1.ValidatingAdmissionPolicySpec.failurePolicy
admissionregistration.v1.Validation.reason
admissionregistration.v1.ParamRef.parameterNotFoundAction
authentication.v1.TokenRequestSpec.expirationSeconds
"""

# ---------------------------------------------------------------------------------------------
# k8s-openapi: exact message names, JSON field names, required fields


def load_openapi(openapi_src):
    """Returns {proto package: {lowercased message name: (Name, {norm: json}, set(required))}}."""
    out = {}
    versions = sorted(
        (d for d in os.listdir(openapi_src) if re.fullmatch(r"v1_\d+", d)),
        key=lambda d: int(d.split("_")[1]),
    )
    if not versions:
        sys.exit(f"error: no v1_NN directories in {openapi_src}")
    # Later (newer) versions only add fields; names never change.  Merge all of them.
    for ver in versions:
        for path in glob.glob(os.path.join(openapi_src, ver, "**", "*.rs"), recursive=True):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            m = re.search(r"^// Generated from definition (io\.k8s\.\S+)$", text, re.M)
            if not m:
                continue
            full = m.group(1)
            pkg, name = full.rsplit(".", 1)
            pkg = "k8s.io." + pkg[len("io.k8s.") :]
            names = {}
            ds = re.search(r"deserialize_struct\(\s*[^,]+,\s*&\[(.*?)\]", text, re.S)
            if ds:
                for js in re.findall(r'"([^"]+)"', ds.group(1)):
                    names[norm(js)] = js
            required = set()
            rq = re.search(r'"required": \[(.*?)\]', text, re.S)
            if rq:
                required = set(re.findall(r'"([^"]+)"', rq.group(1)))
            entry = out.setdefault(pkg, {}).setdefault(name.lower(), [name, {}, set()])
            entry[1].update(names)
            entry[2] |= required
    return out


def norm(s):
    return s.replace("_", "").replace("$", "").lower()


# ---------------------------------------------------------------------------------------------
# k8s-pb: prost structs

ATTR_RE = re.compile(r"#\[prost\((.*)\)\]\s*$")
STRUCT_RE = re.compile(r"^pub struct (\w+) \{")


def module_package(module):
    return "k8s.io." + module.replace("/", ".").replace("_", "-")


def parse_module(src, module):
    """Returns {rust struct name: {"doc": str, "fields": [field dicts]}}."""
    path = os.path.join(src, module, "mod.rs")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    structs = {}
    cur = None
    doc = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        m = STRUCT_RE.match(line)
        if m:
            cur = {"name": m.group(1), "fields": []}
            structs[m.group(1)] = cur
            doc = []
            i += 1
            continue
        if cur is not None and line == "}":
            cur = None
            i += 1
            continue
        if cur is None:
            i += 1
            continue
        if s.startswith("///"):
            doc.append(s[3:].strip())
            i += 1
            continue
        am = ATTR_RE.match(s)
        if am:
            attr = am.group(1)
            # Field declaration: may span several lines; ends with ',' at angle depth 0.
            decl = ""
            i += 1
            while i < len(lines):
                decl += " " + lines[i].strip()
                if decl.count("<") == decl.count(">") and decl.rstrip().endswith(","):
                    break
                i += 1
            i += 1
            decl = re.sub(r",\s*>", ">", decl)
            decl = re.sub(r"<\s+", "<", decl)
            dm = re.match(r"\s*pub (?:r#)?(\w+):\s*(.*),$", decl)
            if not dm:
                sys.exit(f"error: {module}: cannot parse field declaration {decl!r}")
            cur["fields"].append(
                {"rust": dm.group(1), "rtype": dm.group(2).strip(), "attr": attr, "doc": doc}
            )
            doc = []
            continue
        if s.startswith("#[") or not s:
            i += 1
            continue
        sys.exit(f"error: {module}: unexpected line in struct {cur['name']}: {line!r}")
    return structs


def resolve_type(module, rtype):
    """`super::super::x::y::Name` relative to module -> (module, Name)."""
    rtype = rtype.strip()
    if rtype.startswith("crate::"):
        parts = rtype[len("crate::") :].split("::")
        return "/".join(parts[:-1]), parts[-1]
    parts = rtype.split("::")
    base = module.split("/")
    while parts and parts[0] == "super":
        base = base[:-1]
        parts = parts[1:]
    return "/".join(base + parts[:-1]), parts[-1]


def strip_wrapper(t, wrapper):
    t = t.strip()
    if t.startswith(wrapper + "<") and t.endswith(">"):
        return t[len(wrapper) + 1 : -1].strip()
    return None


SCALARS = {
    "string": "Str",
    "bool": "Bool",
    "int32": "I32",
    "int64": "I64",
    "double": "F64",
    "float": "F32",
    "bytes": "Bytes",
}


def parse_field(module, field):
    """Returns (tag, kind, card, map_key, msg_ref) where msg_ref is (module, Name) or None."""
    attr = field["attr"]
    tag_m = re.search(r'tag = "(\d+)"', attr)
    if not tag_m:
        sys.exit(f"error: {module}: no tag in {attr!r}")
    tag = int(tag_m.group(1))
    rtype = field["rtype"]
    bm = re.match(r'btree_map = "(\w+), (\w+)"', attr)
    if bm:
        key, val = bm.group(1), bm.group(2)
        if key not in SCALARS or key == "bytes":
            sys.exit(f"error: {module}: unsupported map key {key}")
        inner = strip_wrapper(rtype, "::prost::alloc::collections::BTreeMap")
        if inner is None:
            sys.exit(f"error: {module}: unexpected map type {rtype}")
        vtype = inner.split(",", 1)[1].strip().rstrip(",").strip()
        if val == "message":
            return tag, "Msg", "Map", SCALARS[key], resolve_type(module, vtype)
        if val not in SCALARS:
            sys.exit(f"error: {module}: unsupported map value {val}")
        return tag, SCALARS[val], "Map", SCALARS[key], None
    parts = [p.strip() for p in attr.split(",")]
    wire = parts[0].split("=")[0].strip()
    if "repeated" in parts:
        card = "Rep"
    elif "optional" in parts:
        card = "One"
    else:
        sys.exit(f"error: {module}: field {field['rust']} is neither optional nor repeated: {attr}")
    if wire == "message":
        t = rtype
        for w in ("::core::option::Option", "::prost::alloc::vec::Vec", "::prost::alloc::boxed::Box"):
            inner = strip_wrapper(t, w)
            if inner is not None:
                t = inner
        inner = strip_wrapper(t, "::prost::alloc::boxed::Box")
        if inner is not None:
            t = inner
        return tag, "Msg", card, None, resolve_type(module, t)
    if wire in SCALARS:
        return tag, SCALARS[wire], card, None, None
    sys.exit(f"error: {module}: unsupported prost type {attr!r}")


def resource_kinds(src, module):
    with open(os.path.join(src, module, "mod.rs"), encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in re.finditer(
        r"impl crate::Resource for (\w+) \{\s*const API_VERSION: &'static str = \"([^\"]*)\";"
        r".*?const KIND: &'static str = \"([^\"]*)\";",
        text,
        re.S,
    ):
        out.append((m.group(2), m.group(3), module, m.group(1)))
    return out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("k8s_pb_src", help="k8s-pb-0.9.0/src directory")
    ap.add_argument("--openapi", help="k8s-openapi-0.29.x/src directory (default: next to k8s-pb)")
    args = ap.parse_args()
    src = os.path.abspath(os.path.expanduser(args.k8s_pb_src))
    if not os.path.isfile(os.path.join(src, "api", "core", "v1", "mod.rs")):
        sys.exit(f"error: {src} does not look like k8s-pb's src directory")
    openapi_src = args.openapi
    if openapi_src is None:
        registry = os.path.dirname(os.path.dirname(src))
        cands = sorted(glob.glob(os.path.join(registry, "k8s-openapi-0.29.*", "src")))
        if not cands:
            sys.exit(f"error: k8s-openapi 0.29 not found in {registry}; pass --openapi")
        openapi_src = cands[-1]
    openapi = load_openapi(openapi_src)

    modules = {}

    def module(mod):
        if mod not in modules:
            modules[mod] = parse_module(src, mod)
        return modules[mod]

    def full_name(mod, rust_name):
        pkg = module_package(mod)
        oa = openapi.get(pkg, {}).get(rust_name.lower())
        return f"{pkg}.{oa[0] if oa else rust_name}", oa

    kinds = []
    for g in GROUPS:
        kinds += resource_kinds(src, "api/" + g)
    kinds += EXTRA_KINDS
    roots = [(mod, name) for _, _, mod, name in kinds]
    roots += [(META, k) for k in META_KINDS]
    # Not reachable from the kinds above, but a special type the decoder knows how to render.
    roots += [(META, "Duration")]

    # Breadth-first over message-typed fields.
    seen = {}
    order = []
    queue = list(roots)
    while queue:
        mod, name = queue.pop(0)
        if (mod, name) in seen:
            continue
        structs = module(mod)
        if name not in structs:
            sys.exit(f"error: message {mod}::{name} not found")
        seen[(mod, name)] = True
        order.append((mod, name))
        for fld in structs[name]["fields"]:
            _, _, _, _, ref = parse_field(mod, fld)
            if ref is not None:
                queue.append(ref)

    pointer = set(x.strip() for x in POINTER_SCALARS.split() if x.strip())
    pointer_used = set()

    messages = []
    errors = []
    warnings = []

    # Go embeds some structs (`json:",inline"`): proto has a message field for them, JSON has the
    # embedded struct's fields in the parent (Volume.volumeSource, Probe.handler, ...).  Detected as
    # a singular message field of a message with a k8s-openapi definition whose name is not one of
    # that definition's JSON names.  The embedded message's JSON names come from the parent.
    inline = set()  # (mod, name, rust field)
    pools = {}  # (mod, name) -> {norm: json} for messages without an own definition
    changed = True
    while changed:
        changed = False
        for mod, name in order:
            _, oa = full_name(mod, name)
            pool = oa[1] if oa is not None else pools.get((mod, name))
            if pool is None:
                continue
            for fld in module(mod)[name]["fields"]:
                _, kind, card, _, ref = parse_field(mod, fld)
                if kind != "Msg" or card != "One" or norm(fld["rust"]) in pool:
                    continue
                if (mod, name, fld["rust"]) not in inline:
                    inline.add((mod, name, fld["rust"]))
                    changed = True
                if full_name(*ref)[1] is None:
                    merged = dict(pools.get(ref, {}))
                    before = len(merged)
                    merged.update(pool)
                    if len(merged) != before or ref not in pools:
                        pools[ref] = merged
                        changed = True

    for mod, name in order:
        fname, oa = full_name(mod, name)
        special = SPECIAL.get(fname)
        own = module(mod)[name]["fields"]
        if (
            special is None
            and oa is None
            and len(own) == 1
            and own[0]["rust"] == "items"
            and parse_field(mod, own[0])[2] == "Rep"
        ):
            # A Go named slice type (`type ExtraValue []string`): JSON is the bare array.
            special = "Items"
        pool = oa[1] if oa is not None else pools.get((mod, name))
        rel_pkg = module_package(mod)
        rel_pkg = rel_pkg.split(".api.", 1)[1] if ".api." in rel_pkg and "apimachinery" not in rel_pkg else rel_pkg
        rel_pkg = rel_pkg.replace("k8s.io.apimachinery.pkg.apis.", "")
        short = f"{rel_pkg}.{fname.rsplit('.', 1)[1]}"
        fields = []
        for fld in own:
            tag, kind, card, key, ref = parse_field(mod, fld)
            n = norm(fld["rust"])
            parts = fld["rust"].split("_")
            camel = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
            json = None
            if (mod, name, fld["rust"]) in inline:
                card = "Inline"
                json = camel  # not a JSON key: the embedded fields are merged into the parent
            elif special is not None:
                json = camel  # rendered by the decoder from the wire fields; for reference only
            elif pool is not None:
                json = pool.get(n)
            elif fld["doc"]:
                first = re.match(r"[A-Za-z0-9]+", fld["doc"][0])
                if first and norm(first.group(0)) == n:
                    json = first.group(0)
                    json = json[0].lower() + json[1:] if not json[:2].isupper() else json
                    warnings.append(f"{fname}.{json}: JSON name from doc comment")
            if json is None:
                errors.append(f"{fname}: no JSON name for field {fld['rust']} (tag {tag})")
                continue
            keep_zero = False
            if card == "One" and kind != "Msg":
                if f"{short}.{json}" in pointer:
                    keep_zero = True
                    pointer_used.add(f"{short}.{json}")
                elif oa is not None and json in oa[2]:
                    keep_zero = True
            elif f"{short}.{json}" in pointer:
                errors.append(f"{short}.{json}: listed in POINTER_SCALARS but not a singular scalar")
            ty = f'Msg("{full_name(*ref)[0]}")' if kind == "Msg" else kind
            fields.append((tag, json, ty, card, key, keep_zero, fld["rust"]))
        tags = [f[0] for f in fields]
        if len(set(tags)) != len(tags):
            errors.append(f"{fname}: duplicate tags")
        jsons = [f[1] for f in fields if f[3] != "Inline"]
        if len(set(jsons)) != len(jsons):
            errors.append(f"{fname}: duplicate JSON names {jsons}")
        fields.sort()
        messages.append((fname, special, fields))

    for p in sorted(pointer - pointer_used):
        if not any(p in e for e in errors):
            errors.append(f"POINTER_SCALARS entry {p} matches no singular scalar field")
    for w_ in warnings:
        print("warning:", w_, file=sys.stderr)
    if errors:
        for e in errors:
            print("error:", e, file=sys.stderr)
        sys.exit(1)

    names = [m[0] for m in messages]
    if len(set(names)) != len(names):
        sys.exit("error: duplicate message names")
    messages.sort(key=lambda m: m[0])

    kind_rows = []
    for api_version, kind, mod, name in kinds:
        kind_rows.append((api_version, kind, full_name(mod, name)[0]))
    kind_rows = sorted(set(kind_rows))
    keys = [(a, k) for a, k, _ in kind_rows]
    if len(set(keys)) != len(keys):
        sys.exit("error: duplicate apiVersion/kind")
    meta_rows = sorted((k, full_name(META, k)[0]) for k in META_KINDS)

    out = []
    w = out.append
    w("// @generated by tools/gen_proto_schema.py -- DO NOT EDIT.")
    w("//")
    w("// Kubernetes protobuf schema: messages reachable from the top-level kinds of the API groups")
    w("// skiff serves, with tag, JSON name and type of every field.  Derived from the k8s-pb 0.9.0")
    w("// crate (prost bindings of the Kubernetes .proto files) and k8s-openapi 0.29 (JSON names).")
    w("// Regenerate with:")
    w("//")
    w("//   python3 tools/gen_proto_schema.py ~/.cargo/registry/src/index.crates.io-*/k8s-pb-0.9.0/src \\")
    w("//       > crates/skiff-api/src/protobuf/schema.rs")
    w("//")
    w("// (Not rustfmt-formatted: `mod schema` is `#[rustfmt::skip]`; one field per line.)")
    w("//")
    w("// f(tag, JSON name, type, One|Rep|Map(key type)|Inline, keep_zero): keep_zero shows a present")
    w("// zero-valued scalar (Go pointer field, see POINTER_SCALARS in the generator, or a field")
    w("// k8s-openapi marks required); other zero scalars are Go non-pointer `omitempty` fields.")
    w("//")
    w(f"// {len(messages)} messages, {sum(len(m[2]) for m in messages)} fields, {len(kind_rows)} kinds.")
    w("")
    w("use super::{Card, Card::*, Field, Message, Special, Ty, Ty::*};")
    w("")
    w("const fn f(tag: u32, json: &'static str, ty: Ty, card: Card, keep_zero: bool) -> Field {")
    w("    Field { tag, json, ty, card, keep_zero }")
    w("}")
    w("")
    w("/// Every message, sorted by full proto name; fields sorted by tag.")
    w("pub(super) static MESSAGES: &[Message] = &[")
    for fname, special, fields in messages:
        sp = f"Some(Special::{special})" if special else "None"
        w(f'    Message {{ name: "{fname}", special: {sp}, fields: &[')
        for tag, json, ty, card, key, keep_zero, _ in fields:
            c = f"Map({key})" if card == "Map" else card
            w(f'        f({tag}, "{json}", {ty}, {c}, {"true" if keep_zero else "false"}),')
        w("    ] },")
    w("];")
    w("")
    w("/// (apiVersion, kind) -> message, sorted.")
    w("pub(super) static KINDS: &[(&str, &str, &str)] = &[")
    for a, k, m in kind_rows:
        w(f'    ("{a}", "{k}", "{m}"),')
    w("];")
    w("")
    w("/// meta/v1 kinds accepted under any apiVersion: kind -> message, sorted.")
    w("pub(super) static META_KINDS: &[(&str, &str)] = &[")
    for k, m in meta_rows:
        w(f'    ("{k}", "{m}"),')
    w("];")
    print("\n".join(out))
    print(
        f"generated {len(messages)} messages, {sum(len(m[2]) for m in messages)} fields, {len(kind_rows)} kinds",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
