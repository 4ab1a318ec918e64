//! Server-side `meta.k8s.io/v1` Table rendering: what kube-apiserver v1.33 answers when
//! `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io`. kubectl prints the
//! columns and cells the server sends, word for word, so to print exactly what it prints
//! against upstream both the column definitions and every cell must be upstream's: the print
//! handlers of `pkg/printers/internalversion/printers.go` (through `pkg/printers/storage`), the
//! apiserver's default table (`rest.NewDefaultTableConvertor`: Name and Created At) for kinds
//! that have none, and kube-aggregator's APIService table.
//!
//! Upstream's table convertor always renders the wide form (`GenerateOptions{Wide: true}`), so
//! the cells here always include the priority-1 columns; kubectl hides those unless `-o wide`.
//!
//! Objects are read as served JSON. Each printer reads the fields its Go counterpart reads on
//! the internal type, after the v1-to-internal conversion (for instance a lone `podIP` fills
//! `podIPs`) and after the defaulting upstream applies on every write: a field that upstream
//! would have defaulted is read with that default when it is absent, so an object stored
//! without defaults prints as upstream prints the defaulted one. Anything else missing renders
//! as upstream renders the Go zero value.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Which form of each object a Table row carries (`TableOptions.includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object in the rows.
    None,
    /// A `PartialObjectMetadata` holding the object's metadata; what kubectl asks for, and
    /// upstream's default when the parameter is absent.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an empty value is upstream's default.
    pub fn from_param(value: &str) -> Option<IncludeObject> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" | "" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// Whether upstream has a dedicated printer for the resource (`group` is "" for core,
/// `resource` the plural). Without one the default table (Name, Created At) is served.
pub fn has_printer(group: &str, resource: &str) -> bool {
    printer_for(group, resource) != Printer::Default
}

/// The column definitions upstream serves for the resource, each serialized as
/// `TableColumnDefinition` is: `{"name","type","format","description","priority"}`.
pub fn column_definitions(group: &str, resource: &str) -> Vec<Value> {
    columns(printer_for(group, resource))
        .iter()
        .copied()
        .map(Col::to_json)
        .collect()
}

/// The cells of one object's row, in column order; ages are measured against `now`.
pub fn row_cells(group: &str, resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    cells(printer_for(group, resource), group, obj, now)
}

/// A full `meta.k8s.io/v1` Table for `objects` (a list's items, or one object for a GET).
/// `list_resource_version` and `continue_token` become the Table's list metadata, omitted
/// when empty as upstream's `ListMeta` omits them.
pub fn table(
    group: &str,
    resource: &str,
    objects: &[Value],
    list_resource_version: &str,
    continue_token: Option<&str>,
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let rows = objects.iter().map(|obj| {
        let object = match include_object {
            IncludeObject::None => None,
            IncludeObject::Metadata => Some(Value::from(PartialObjectMetadata::new(
                obj.get("metadata")
                    .filter(|m| m.is_object())
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
            ))),
            IncludeObject::Object => Some(obj.clone()),
        };
        (obj, object)
    });
    let table = Table::new(
        group,
        resource,
        rows,
        list_resource_version,
        continue_token,
        now,
    );
    serde_json::to_value(table).unwrap_or(Value::Null)
}

/// A `meta.k8s.io/v1` Table whose rows carry objects of type `O` (decoded values, or raw
/// JSON straight from storage); serialize it as the answer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Table<O> {
    api_version: &'static str,
    column_definitions: Vec<Value>,
    kind: &'static str,
    metadata: Map<String, Value>,
    rows: Vec<TableRow<O>>,
}

/// One row: its cells, upstream's row conditions (`Completed` for finished pods), and the
/// object it stands for when the Table includes objects.
#[derive(Debug, serde::Serialize)]
pub struct TableRow<O> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<O>,
}

/// A row's object for `includeObject=Metadata`: the object's metadata alone.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialObjectMetadata<M> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: M,
}

impl<M: serde::Serialize> PartialObjectMetadata<M> {
    /// The `PartialObjectMetadata` of an object with this metadata.
    pub fn new(metadata: M) -> Self {
        PartialObjectMetadata {
            api_version: "meta.k8s.io/v1",
            kind: "PartialObjectMetadata",
            metadata,
        }
    }
}

impl From<PartialObjectMetadata<Value>> for Value {
    fn from(p: PartialObjectMetadata<Value>) -> Value {
        serde_json::json!({"apiVersion": p.api_version, "kind": p.kind, "metadata": p.metadata})
    }
}

impl<O> Table<O> {
    /// The Table of `objects`, each the object its cells are read from (managed fields are
    /// not needed) with what its row carries. Rows keep the objects' order, except that
    /// FlowSchemas are ordered as upstream lists them.
    pub fn new<'a>(
        group: &str,
        resource: &str,
        objects: impl IntoIterator<Item = (&'a Value, Option<O>)>,
        list_resource_version: &str,
        continue_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Self {
        let rows = Rows::of(group, resource);
        let mut ordered: Vec<(&Value, Option<O>)> = objects.into_iter().collect();
        if rows.reorders() {
            // printFlowSchemaList is the one list printer that reorders: by matching
            // precedence, then by name (apihelpers.FlowSchemaSequence).
            ordered.sort_by(|(a, _), (b, _)| {
                flow_schema_precedence(a)
                    .cmp(&flow_schema_precedence(b))
                    .then_with(|| name(a).cmp(name(b)))
            });
        }
        let rows = ordered
            .into_iter()
            .map(|(obj, object)| rows.row(obj, object, now))
            .collect();
        Table::with_rows(group, resource, rows, list_resource_version, continue_token)
    }

    /// A Table of rows already made (by [`Rows::row`], in the order to serve).
    pub fn with_rows(
        group: &str,
        resource: &str,
        rows: Vec<TableRow<O>>,
        list_resource_version: &str,
        continue_token: Option<&str>,
    ) -> Self {
        let mut metadata = Map::new();
        if !list_resource_version.is_empty() {
            metadata.insert("resourceVersion".into(), list_resource_version.into());
        }
        if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
            metadata.insert("continue".into(), token.into());
        }
        Table {
            api_version: "meta.k8s.io/v1",
            column_definitions: column_definitions(group, resource),
            kind: "Table",
            metadata,
            rows,
        }
    }
}

/// The rows of one resource's Tables, made one at a time (for callers that make them in
/// parallel or stream them).
#[derive(Clone, Copy, Debug)]
pub struct Rows<'g> {
    printer: Printer,
    group: &'g str,
}

impl<'g> Rows<'g> {
    pub fn of(group: &'g str, resource: &str) -> Self {
        Rows {
            printer: printer_for(group, resource),
            group,
        }
    }

    /// Whether upstream orders this resource's rows itself (FlowSchemas, by precedence):
    /// then the rows must be made with [`Table::new`], which sorts them.
    pub fn reorders(&self) -> bool {
        self.printer == Printer::FlowSchema
    }

    /// The row of one object (read as served, managed fields not needed).
    pub fn row<O>(&self, obj: &Value, object: Option<O>, now: DateTime<Utc>) -> TableRow<O> {
        TableRow {
            cells: cells(self.printer, self.group, obj, now),
            conditions: row_conditions(self.printer, obj),
            object,
        }
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration` of a duration in nanoseconds:
/// about two significant figures ("5s", "3m20s", "4h", "2d3h", "3y45d"), "0s" for up to two
/// seconds of clock skew into the future, "<invalid>" beyond that.
pub fn human_duration(nanos: i64) -> String {
    const SECOND: i64 = 1_000_000_000;
    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;
    // Go's int(d.Seconds()) truncates toward zero, as Rust's integer division does.
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        let s = (nanos / SECOND) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        let m = (nanos / MINUTE) % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

// ---------------------------------------------------------------------------------------
// Printers and their columns
// ---------------------------------------------------------------------------------------

/// One upstream print handler (or one of the two tables served without a handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    PodTemplate,
    PodDisruptionBudget,
    ReplicationController,
    ReplicaSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Ingress,
    IngressClass,
    StatefulSet,
    Endpoints,
    Node,
    Event,
    Namespace,
    Secret,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ComponentStatus,
    Deployment,
    HorizontalPodAutoscaler,
    ConfigMap,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    CertificateSigningRequest,
    ClusterTrustBundle,
    Lease,
    LeaseCandidate,
    StorageClass,
    VolumeAttributesClass,
    ControllerRevision,
    ResourceQuota,
    PriorityClass,
    RuntimeClass,
    VolumeAttachment,
    EndpointSlice,
    CsiNode,
    CsiDriver,
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding,
    FlowSchema,
    PriorityLevelConfiguration,
    StorageVersion,
    DeviceClass,
    ResourceClaim,
    ResourceClaimTemplate,
    ResourceSlice,
    ServiceCidr,
    IpAddress,
    StorageVersionMigration,
    ApiService,
    /// `rest.NewDefaultTableConvertor`: roles, clusterroles, limitranges,
    /// csistoragecapacities (whose store registers the default convertor although a print
    /// handler exists), customresourcedefinitions and every kind without a handler.
    Default,
}

fn printer_for(group: &str, resource: &str) -> Printer {
    use Printer as P;
    match (group, resource) {
        ("", "pods") => P::Pod,
        ("", "podtemplates") => P::PodTemplate,
        ("", "replicationcontrollers") => P::ReplicationController,
        ("", "services") => P::Service,
        ("", "endpoints") => P::Endpoints,
        ("", "nodes") => P::Node,
        ("", "events") | ("events.k8s.io", "events") => P::Event,
        ("", "namespaces") => P::Namespace,
        ("", "secrets") => P::Secret,
        ("", "serviceaccounts") => P::ServiceAccount,
        ("", "persistentvolumes") => P::PersistentVolume,
        ("", "persistentvolumeclaims") => P::PersistentVolumeClaim,
        ("", "componentstatuses") => P::ComponentStatus,
        ("", "configmaps") => P::ConfigMap,
        ("", "resourcequotas") => P::ResourceQuota,
        ("apps", "deployments") => P::Deployment,
        ("apps", "replicasets") => P::ReplicaSet,
        ("apps", "statefulsets") => P::StatefulSet,
        ("apps", "daemonsets") => P::DaemonSet,
        ("apps", "controllerrevisions") => P::ControllerRevision,
        ("batch", "jobs") => P::Job,
        ("batch", "cronjobs") => P::CronJob,
        ("autoscaling", "horizontalpodautoscalers") => P::HorizontalPodAutoscaler,
        ("policy", "poddisruptionbudgets") => P::PodDisruptionBudget,
        ("networking.k8s.io", "ingresses") => P::Ingress,
        ("networking.k8s.io", "ingressclasses") => P::IngressClass,
        ("networking.k8s.io", "networkpolicies") => P::NetworkPolicy,
        ("networking.k8s.io", "servicecidrs") => P::ServiceCidr,
        ("networking.k8s.io", "ipaddresses") => P::IpAddress,
        ("rbac.authorization.k8s.io", "rolebindings") => P::RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => P::ClusterRoleBinding,
        ("certificates.k8s.io", "certificatesigningrequests") => P::CertificateSigningRequest,
        ("certificates.k8s.io", "clustertrustbundles") => P::ClusterTrustBundle,
        ("coordination.k8s.io", "leases") => P::Lease,
        ("coordination.k8s.io", "leasecandidates") => P::LeaseCandidate,
        ("storage.k8s.io", "storageclasses") => P::StorageClass,
        ("storage.k8s.io", "volumeattributesclasses") => P::VolumeAttributesClass,
        ("storage.k8s.io", "volumeattachments") => P::VolumeAttachment,
        ("storage.k8s.io", "csinodes") => P::CsiNode,
        ("storage.k8s.io", "csidrivers") => P::CsiDriver,
        ("scheduling.k8s.io", "priorityclasses") => P::PriorityClass,
        ("node.k8s.io", "runtimeclasses") => P::RuntimeClass,
        ("discovery.k8s.io", "endpointslices") => P::EndpointSlice,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            P::MutatingWebhookConfiguration
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            P::ValidatingWebhookConfiguration
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            P::ValidatingAdmissionPolicy
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            P::ValidatingAdmissionPolicyBinding
        }
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => P::MutatingAdmissionPolicy,
        ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings") => {
            P::MutatingAdmissionPolicyBinding
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => P::FlowSchema,
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            P::PriorityLevelConfiguration
        }
        ("internal.apiserver.k8s.io", "storageversions") => P::StorageVersion,
        ("resource.k8s.io", "deviceclasses") => P::DeviceClass,
        ("resource.k8s.io", "resourceclaims") => P::ResourceClaim,
        ("resource.k8s.io", "resourceclaimtemplates") => P::ResourceClaimTemplate,
        ("resource.k8s.io", "resourceslices") => P::ResourceSlice,
        ("storagemigration.k8s.io", "storageversionmigrations") => P::StorageVersionMigration,
        ("apiregistration.k8s.io", "apiservices") => P::ApiService,
        _ => P::Default,
    }
}

/// A `metav1.TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Col {
    /// Upstream serializes every field, empty or zero included (no `omitempty`).
    fn to_json(self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.into());
        m.insert("type".into(), self.ty.into());
        m.insert("format".into(), self.format.into());
        m.insert("description".into(), self.description.into());
        m.insert("priority".into(), self.priority.into());
        Value::Object(m)
    }
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A priority-1 column: only shown by `kubectl get -o wide`.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: doc::META_NAME,
    priority: 0,
};
const AGE: Col = col("Age", "string", doc::META_CREATION);
const CONTAINERS: Col = col(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Col = col(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const CONTAINERS_WIDE: Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES_WIDE: Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

const POD_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", doc::POD_STATUS_POD_IP),
    wide("Node", "string", doc::POD_SPEC_NODE_NAME),
    wide("Nominated Node", "string", doc::POD_STATUS_NOMINATED),
    wide("Readiness Gates", "string", doc::POD_SPEC_READINESS_GATES),
];

const POD_TEMPLATE_COLUMNS: &[Col] = &[
    NAME,
    CONTAINERS,
    IMAGES,
    col("Pod Labels", "string", "The labels for the pod template."),
];

const PDB_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

const RC_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", doc::RC_SPEC_REPLICAS),
    col("Current", "integer", doc::RC_STATUS_REPLICAS),
    col("Ready", "integer", doc::RC_STATUS_READY),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
    wide("Selector", "string", doc::RC_SPEC_SELECTOR),
];

const RS_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", doc::EXT_RS_SPEC_REPLICAS),
    col("Current", "integer", doc::EXT_RS_STATUS_REPLICAS),
    col("Ready", "integer", doc::EXT_RS_STATUS_READY),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
    wide("Selector", "string", doc::EXT_RS_SPEC_SELECTOR),
];

const DS_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", doc::EXT_DS_STATUS_DESIRED),
    col("Current", "integer", doc::EXT_DS_STATUS_CURRENT),
    col("Ready", "integer", doc::EXT_DS_STATUS_READY),
    col("Up-to-date", "integer", doc::EXT_DS_STATUS_UPDATED),
    col("Available", "integer", doc::EXT_DS_STATUS_AVAILABLE),
    col("Node Selector", "string", doc::POD_SPEC_NODE_SELECTOR),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
    wide("Selector", "string", doc::EXT_DS_SPEC_SELECTOR),
];

const JOB_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", doc::JOB_STATUS_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
    wide("Selector", "string", doc::JOB_SPEC_SELECTOR),
];

const CRONJOB_COLUMNS: &[Col] = &[
    NAME,
    col("Schedule", "string", doc::CJ_B1_SCHEDULE),
    col("Timezone", "string", doc::CJ_B1_TIME_ZONE),
    col("Suspend", "boolean", doc::CJ_B1_SUSPEND),
    col("Active", "integer", doc::CJ_B1_ACTIVE),
    col("Last Schedule", "string", doc::CJ_B1_LAST_SCHEDULE),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
    wide("Selector", "string", doc::JOB_SPEC_SELECTOR),
];

const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", doc::SVC_SPEC_TYPE),
    col("Cluster-IP", "string", doc::SVC_SPEC_CLUSTER_IP),
    col("External-IP", "string", doc::SVC_SPEC_EXTERNAL_IPS),
    col("Port(s)", "string", doc::SVC_SPEC_PORTS),
    AGE,
    wide("Selector", "string", doc::SVC_SPEC_SELECTOR),
];

const INGRESS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

const INGRESS_CLASS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

const STATEFULSET_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
];

const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    col("Endpoints", "string", doc::ENDPOINTS_SUBSETS),
    AGE,
];

const NODE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", doc::NODE_INFO_KUBELET),
    wide("Internal-IP", "string", doc::NODE_STATUS_ADDRESSES),
    wide("External-IP", "string", doc::NODE_STATUS_ADDRESSES),
    wide("OS-Image", "string", doc::NODE_INFO_OS_IMAGE),
    wide("Kernel-Version", "string", doc::NODE_INFO_KERNEL),
    wide("Container-Runtime", "string", doc::NODE_INFO_RUNTIME),
];

const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", doc::EVENT_LAST_TIMESTAMP),
    col("Type", "string", doc::EVENT_TYPE),
    col("Reason", "string", doc::EVENT_REASON),
    col("Object", "string", doc::EVENT_INVOLVED),
    wide("Subobject", "string", doc::OBJREF_FIELD_PATH),
    wide("Source", "string", doc::EVENT_SOURCE),
    col("Message", "string", doc::EVENT_MESSAGE),
    wide("First Seen", "string", doc::EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", doc::EVENT_COUNT),
    Col {
        name: "Name",
        ty: "string",
        format: "name",
        description: doc::META_NAME,
        priority: 1,
    },
];

const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", doc::SECRET_TYPE),
    col("Data", "string", doc::SECRET_DATA),
    AGE,
];

const SERVICE_ACCOUNT_COLUMNS: &[Col] = &[NAME, col("Secrets", "string", doc::SA_SECRETS), AGE];

const PV_COLUMNS: &[Col] = &[
    NAME,
    col("Capacity", "string", doc::PV_SPEC_CAPACITY),
    col("Access Modes", "string", doc::PV_SPEC_ACCESS_MODES),
    col("Reclaim Policy", "string", doc::PV_SPEC_RECLAIM),
    col("Status", "string", doc::PV_STATUS_PHASE),
    col("Claim", "string", doc::PV_SPEC_CLAIM_REF),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col("Reason", "string", doc::PV_STATUS_REASON),
    AGE,
    wide("VolumeMode", "string", doc::PV_SPEC_VOLUME_MODE),
];

const PVC_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", doc::PVC_STATUS_PHASE),
    col("Volume", "string", doc::PVC_SPEC_VOLUME_NAME),
    col("Capacity", "string", doc::PVC_STATUS_CAPACITY),
    col("Access Modes", "string", doc::PVC_STATUS_ACCESS_MODES),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide("VolumeMode", "string", doc::PVC_SPEC_VOLUME_MODE),
];

const COMPONENT_STATUS_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", doc::EXT_DEPLOY_STATUS_UPDATED),
    col("Available", "string", doc::EXT_DEPLOY_STATUS_AVAILABLE),
    AGE,
    CONTAINERS_WIDE,
    IMAGES_WIDE,
    wide("Selector", "string", doc::EXT_DEPLOY_SPEC_SELECTOR),
];

const HPA_COLUMNS: &[Col] = &[
    NAME,
    col("Reference", "string", doc::HPA2_SCALE_TARGET),
    col("Targets", "string", doc::HPA_B1_METRICS),
    col("MinPods", "string", doc::HPA2_MIN),
    col("MaxPods", "string", doc::HPA2_MAX),
    col("Replicas", "string", doc::HPA2_CURRENT),
    AGE,
];

const CONFIGMAP_COLUMNS: &[Col] = &[NAME, col("Data", "string", doc::CONFIGMAP_DATA), AGE];

const NETWORK_POLICY_COLUMNS: &[Col] = &[
    NAME,
    col("Pod-Selector", "string", doc::EXT_NETPOL_POD_SELECTOR),
    AGE,
];

const ROLE_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col("Role", "string", doc::RBAC_B1_RB_ROLEREF),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

const CLUSTER_ROLE_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col("Role", "string", doc::RBAC_B1_CRB_ROLEREF),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

const CSR_COLUMNS: &[Col] = &[
    NAME,
    AGE,
    col("SignerName", "string", doc::CSR_B1_SIGNER),
    col("Requestor", "string", doc::CSR_B1_REQUEST),
    col("RequestedDuration", "string", doc::CSR1_EXPIRATION),
    col("Condition", "string", doc::CSR_B1_CONDITIONS),
];

const CLUSTER_TRUST_BUNDLE_COLUMNS: &[Col] =
    &[NAME, col("SignerName", "string", doc::CTB_A1_SIGNER)];

const LEASE_COLUMNS: &[Col] = &[NAME, col("Holder", "string", doc::LEASE_SPEC_HOLDER), AGE];

const LEASE_CANDIDATE_COLUMNS: &[Col] = &[
    NAME,
    col("LeaseName", "string", doc::LC_LEASE_NAME),
    // Upstream looks these up in ObjectMeta's docs, which have no such keys: empty.
    col("BinaryVersion", "string", ""),
    col("EmulationVersion", "string", ""),
    AGE,
];

const STORAGE_CLASS_COLUMNS: &[Col] = &[
    NAME,
    col("Provisioner", "string", doc::SC_PROVISIONER),
    col("ReclaimPolicy", "string", doc::SC_RECLAIM),
    col("VolumeBindingMode", "string", doc::SC_BINDING_MODE),
    col("AllowVolumeExpansion", "string", doc::SC_ALLOW_EXPANSION),
    AGE,
];

const VOLUME_ATTRIBUTES_CLASS_COLUMNS: &[Col] =
    &[NAME, col("DriverName", "string", doc::VAC_DRIVER), AGE];

const CONTROLLER_REVISION_COLUMNS: &[Col] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", doc::CR_REVISION),
    AGE,
];

const RESOURCE_QUOTA_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    AGE,
];

const PRIORITY_CLASS_COLUMNS: &[Col] = &[
    NAME,
    col("Value", "integer", doc::PC_VALUE),
    col("Global-Default", "boolean", doc::PC_GLOBAL_DEFAULT),
    AGE,
    col("PreemptionPolicy", "string", doc::PC_PREEMPTION),
];

const RUNTIME_CLASS_COLUMNS: &[Col] = &[
    NAME,
    // Upstream looks "handler" up in ObjectMeta's docs: empty.
    col("Handler", "string", ""),
    AGE,
];

const VOLUME_ATTACHMENT_COLUMNS: &[Col] = &[
    NAME,
    Col {
        name: "Attacher",
        ty: "string",
        format: "name",
        description: doc::VA_SPEC_ATTACHER,
        priority: 0,
    },
    col("PV", "string", doc::VA_SOURCE_PV),
    col("Node", "string", doc::VA_SPEC_NODE_NAME),
    col("Attached", "boolean", doc::VA_STATUS_ATTACHED),
    AGE,
];

const ENDPOINT_SLICE_COLUMNS: &[Col] = &[
    NAME,
    col("AddressType", "string", doc::ES_B1_ADDRESS_TYPE),
    col("Ports", "string", doc::ES_B1_PORTS),
    col("Endpoints", "string", doc::ES_B1_ENDPOINTS),
    AGE,
];

const CSI_NODE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

const CSI_DRIVER_COLUMNS: &[Col] = &[
    NAME,
    col("AttachRequired", "boolean", doc::CSIDRIVER_ATTACH_REQUIRED),
    col("PodInfoOnMount", "boolean", doc::CSIDRIVER_POD_INFO),
    col(
        "StorageCapacity",
        "boolean",
        doc::CSIDRIVER_STORAGE_CAPACITY,
    ),
    col("TokenRequests", "string", doc::CSIDRIVER_TOKEN_REQUESTS),
    col(
        "RequiresRepublish",
        "boolean",
        doc::CSIDRIVER_REQUIRES_REPUBLISH,
    ),
    col("Modes", "string", doc::CSIDRIVER_MODES),
    AGE,
];

const WEBHOOK_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

const PARAM_KIND: Col = col(
    "ParamKind",
    "string",
    "ParamKind specifies the kind of resources used to parameterize this policy",
);

const VALIDATING_ADMISSION_POLICY_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    PARAM_KIND,
    AGE,
];

const MUTATING_ADMISSION_POLICY_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Mutations",
        "integer",
        "Mutation indicates the number of mutations rules defined in this configuration",
    ),
    PARAM_KIND,
    AGE,
];

const ADMISSION_POLICY_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col(
        "PolicyName",
        "string",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    col(
        "ParamRef",
        "string",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

const FLOW_SCHEMA_COLUMNS: &[Col] = &[
    NAME,
    col("PriorityLevel", "string", doc::FS_PL_NAME),
    col("MatchingPrecedence", "string", doc::FS_PRECEDENCE),
    col("DistinguisherMethod", "string", doc::FS_DISTINGUISHER),
    AGE,
    col(
        "MissingPL",
        "string",
        "references a broken or non-existent PriorityLevelConfiguration",
    ),
];

const PRIORITY_LEVEL_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", doc::PL_TYPE),
    col("NominalConcurrencyShares", "string", doc::PL_NCS),
    col("Queues", "string", doc::PL_QUEUES),
    col("HandSize", "string", doc::PL_HAND),
    col("QueueLengthLimit", "string", doc::PL_QLEN),
    AGE,
];

const STORAGE_VERSION_COLUMNS: &[Col] = &[
    NAME,
    col("CommonEncodingVersion", "string", doc::SV_COMMON),
    col("StorageVersions", "string", doc::SV_VERSIONS),
    AGE,
];

const NAME_AGE_COLUMNS: &[Col] = &[NAME, AGE];

const RESOURCE_CLAIM_COLUMNS: &[Col] = &[
    NAME,
    col(
        "State",
        "string",
        "A summary of the current state (allocated, pending, reserved, etc.).",
    ),
    AGE,
];

const RESOURCE_SLICE_COLUMNS: &[Col] = &[
    NAME,
    col("Node", "string", doc::RSLICE_NODE),
    col("Driver", "string", doc::RSLICE_DRIVER),
    col("Pool", "string", doc::RPOOL_NAME),
    AGE,
];

const SERVICE_CIDR_COLUMNS: &[Col] = &[NAME, col("CIDRs", "string", doc::SCIDR_CIDRS), AGE];

/// Upstream declares two columns for IPAddress but its printer emits three cells (the
/// third is the age); kubectl drops cells past the last column.
const IP_ADDRESS_COLUMNS: &[Col] = &[NAME, col("ParentRef", "string", doc::IPADDR_PARENT)];

const STORAGE_VERSION_MIGRATION_COLUMNS: &[Col] = &[
    // This one Name column carries no "name" format upstream.
    col("Name", "string", doc::META_NAME),
    col("Resource", "string", "Fully qualified resource to migrate"),
];

const API_SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

const DEFAULT_COLUMNS: &[Col] = &[NAME, col("Created At", "date", doc::META_CREATION)];

fn columns(printer: Printer) -> &'static [Col] {
    use Printer as P;
    match printer {
        P::Pod => POD_COLUMNS,
        P::PodTemplate => POD_TEMPLATE_COLUMNS,
        P::PodDisruptionBudget => PDB_COLUMNS,
        P::ReplicationController => RC_COLUMNS,
        P::ReplicaSet => RS_COLUMNS,
        P::DaemonSet => DS_COLUMNS,
        P::Job => JOB_COLUMNS,
        P::CronJob => CRONJOB_COLUMNS,
        P::Service => SERVICE_COLUMNS,
        P::Ingress => INGRESS_COLUMNS,
        P::IngressClass => INGRESS_CLASS_COLUMNS,
        P::StatefulSet => STATEFULSET_COLUMNS,
        P::Endpoints => ENDPOINTS_COLUMNS,
        P::Node => NODE_COLUMNS,
        P::Event => EVENT_COLUMNS,
        P::Namespace => NAMESPACE_COLUMNS,
        P::Secret => SECRET_COLUMNS,
        P::ServiceAccount => SERVICE_ACCOUNT_COLUMNS,
        P::PersistentVolume => PV_COLUMNS,
        P::PersistentVolumeClaim => PVC_COLUMNS,
        P::ComponentStatus => COMPONENT_STATUS_COLUMNS,
        P::Deployment => DEPLOYMENT_COLUMNS,
        P::HorizontalPodAutoscaler => HPA_COLUMNS,
        P::ConfigMap => CONFIGMAP_COLUMNS,
        P::NetworkPolicy => NETWORK_POLICY_COLUMNS,
        P::RoleBinding => ROLE_BINDING_COLUMNS,
        P::ClusterRoleBinding => CLUSTER_ROLE_BINDING_COLUMNS,
        P::CertificateSigningRequest => CSR_COLUMNS,
        P::ClusterTrustBundle => CLUSTER_TRUST_BUNDLE_COLUMNS,
        P::Lease => LEASE_COLUMNS,
        P::LeaseCandidate => LEASE_CANDIDATE_COLUMNS,
        P::StorageClass => STORAGE_CLASS_COLUMNS,
        P::VolumeAttributesClass => VOLUME_ATTRIBUTES_CLASS_COLUMNS,
        P::ControllerRevision => CONTROLLER_REVISION_COLUMNS,
        P::ResourceQuota => RESOURCE_QUOTA_COLUMNS,
        P::PriorityClass => PRIORITY_CLASS_COLUMNS,
        P::RuntimeClass => RUNTIME_CLASS_COLUMNS,
        P::VolumeAttachment => VOLUME_ATTACHMENT_COLUMNS,
        P::EndpointSlice => ENDPOINT_SLICE_COLUMNS,
        P::CsiNode => CSI_NODE_COLUMNS,
        P::CsiDriver => CSI_DRIVER_COLUMNS,
        P::MutatingWebhookConfiguration | P::ValidatingWebhookConfiguration => WEBHOOK_COLUMNS,
        P::ValidatingAdmissionPolicy => VALIDATING_ADMISSION_POLICY_COLUMNS,
        P::MutatingAdmissionPolicy => MUTATING_ADMISSION_POLICY_COLUMNS,
        P::ValidatingAdmissionPolicyBinding | P::MutatingAdmissionPolicyBinding => {
            ADMISSION_POLICY_BINDING_COLUMNS
        }
        P::FlowSchema => FLOW_SCHEMA_COLUMNS,
        P::PriorityLevelConfiguration => PRIORITY_LEVEL_COLUMNS,
        P::StorageVersion => STORAGE_VERSION_COLUMNS,
        P::DeviceClass | P::ResourceClaimTemplate => NAME_AGE_COLUMNS,
        P::ResourceClaim => RESOURCE_CLAIM_COLUMNS,
        P::ResourceSlice => RESOURCE_SLICE_COLUMNS,
        P::ServiceCidr => SERVICE_CIDR_COLUMNS,
        P::IpAddress => IP_ADDRESS_COLUMNS,
        P::StorageVersionMigration => STORAGE_VERSION_MIGRATION_COLUMNS,
        P::ApiService => API_SERVICE_COLUMNS,
        P::Default => DEFAULT_COLUMNS,
    }
}

fn cells(printer: Printer, group: &str, o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    use Printer as P;
    match printer {
        P::Pod => print_pod(o, now),
        P::PodTemplate => print_pod_template(o),
        P::PodDisruptionBudget => print_pdb(o, now),
        P::ReplicationController => print_replication_controller(o, now),
        P::ReplicaSet => print_replica_set(o, now),
        P::DaemonSet => print_daemon_set(o, now),
        P::Job => print_job(o, now),
        P::CronJob => print_cron_job(o, now),
        P::Service => print_service(o, now),
        P::Ingress => print_ingress(o, now),
        P::IngressClass => print_ingress_class(o, now),
        P::StatefulSet => print_stateful_set(o, now),
        P::Endpoints => print_endpoints(o, now),
        P::Node => print_node(o, now),
        P::Event => print_event(o, now, group == "events.k8s.io"),
        P::Namespace => print_namespace(o, now),
        P::Secret => print_secret(o, now),
        P::ServiceAccount => vec![
            s(name(o)),
            int_cell(arr(o, &["secrets"]).len()),
            age(o, now),
        ],
        P::PersistentVolume => print_persistent_volume(o, now),
        P::PersistentVolumeClaim => print_persistent_volume_claim(o, now),
        P::ComponentStatus => print_component_status(o),
        P::Deployment => print_deployment(o, now),
        P::HorizontalPodAutoscaler => print_hpa(o, now),
        P::ConfigMap => vec![
            s(name(o)),
            int_cell(map_len(o, &["data"]) + map_len(o, &["binaryData"])),
            age(o, now),
        ],
        P::NetworkPolicy => vec![
            s(name(o)),
            // A missing podSelector is the empty selector: everything, printed "<none>".
            s(format_label_selector(at(o, &["spec", "podSelector"]))),
            age(o, now),
        ],
        P::RoleBinding | P::ClusterRoleBinding => print_role_binding(o, now),
        P::CertificateSigningRequest => print_csr(o, now),
        P::ClusterTrustBundle => vec![
            s(name(o)),
            s(or_default(str_at(o, &["spec", "signerName"]), "<none>")),
        ],
        P::Lease => vec![
            s(name(o)),
            s(str_at(o, &["spec", "holderIdentity"])),
            age(o, now),
        ],
        P::LeaseCandidate => vec![
            s(name(o)),
            s(str_at(o, &["spec", "leaseName"])),
            s(str_at(o, &["spec", "binaryVersion"])),
            s(str_at(o, &["spec", "emulationVersion"])),
            age(o, now),
        ],
        P::StorageClass => print_storage_class(o, now),
        P::VolumeAttributesClass => {
            let mut display = name(o).to_string();
            if annotation(
                o,
                "volumeattributesclass.alpha.kubernetes.io/is-default-class",
            ) == Some("true")
            {
                display.push_str(" (default)");
            }
            vec![s(display), s(str_at(o, &["driverName"])), age(o, now)]
        }
        P::ControllerRevision => print_controller_revision(o, now),
        P::ResourceQuota => print_resource_quota(o, now),
        P::PriorityClass => vec![
            s(name(o)),
            Value::from(int(o, &["value"])),
            Value::Bool(bool_at(o, &["globalDefault"])),
            age(o, now),
            // Defaulted on write (SetDefaults_PriorityClass).
            s(or_default(
                str_at(o, &["preemptionPolicy"]),
                "PreemptLowerPriority",
            )),
        ],
        P::RuntimeClass => vec![s(name(o)), s(str_at(o, &["handler"])), age(o, now)],
        P::VolumeAttachment => vec![
            s(name(o)),
            s(str_at(o, &["spec", "attacher"])),
            s(str_at(o, &["spec", "source", "persistentVolumeName"])),
            s(str_at(o, &["spec", "nodeName"])),
            Value::Bool(bool_at(o, &["status", "attached"])),
            age(o, now),
        ],
        P::EndpointSlice => print_endpoint_slice(o, now),
        P::CsiNode => vec![
            s(name(o)),
            int_cell(arr(o, &["spec", "drivers"]).len()),
            age(o, now),
        ],
        P::CsiDriver => print_csi_driver(o, now),
        P::MutatingWebhookConfiguration | P::ValidatingWebhookConfiguration => vec![
            s(name(o)),
            int_cell(arr(o, &["webhooks"]).len()),
            age(o, now),
        ],
        P::ValidatingAdmissionPolicy => print_admission_policy(o, now, "validations"),
        P::MutatingAdmissionPolicy => print_admission_policy(o, now, "mutations"),
        P::ValidatingAdmissionPolicyBinding | P::MutatingAdmissionPolicyBinding => {
            print_admission_policy_binding(o, now)
        }
        P::FlowSchema => print_flow_schema(o, now),
        P::PriorityLevelConfiguration => print_priority_level(o, now),
        P::StorageVersion => print_storage_version(o, now),
        P::DeviceClass | P::ResourceClaimTemplate => vec![s(name(o)), age(o, now)],
        P::ResourceClaim => vec![s(name(o)), s(resource_claim_state(o)), age(o, now)],
        P::ResourceSlice => vec![
            s(name(o)),
            s(str_at(o, &["spec", "nodeName"])),
            s(str_at(o, &["spec", "driver"])),
            s(str_at(o, &["spec", "pool", "name"])),
            age(o, now),
        ],
        P::ServiceCidr => vec![
            s(name(o)),
            s(strings(arr(o, &["spec", "cidrs"])).join(",")),
            age(o, now),
        ],
        P::IpAddress => print_ip_address(o, now),
        P::StorageVersionMigration => {
            let r = |field: &str| str_at(o, &["spec", "resource", field]);
            vec![
                s(name(o)),
                s(format!("{}.{}.{}", r("resource"), r("version"), r("group"))),
            ]
        }
        P::ApiService => print_api_service(o, now),
        P::Default => vec![
            s(name(o)),
            s(rfc3339_or_zero(parse_time(at(
                o,
                &["metadata", "creationTimestamp"],
            )))),
        ],
    }
}

/// Row conditions: only the pod printer sets them, marking finished pods as Completed.
fn row_conditions(printer: Printer, o: &Value) -> Option<Value> {
    if printer != Printer::Pod {
        return None;
    }
    let (reason, message) = match str_at(o, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    let mut condition = Map::new();
    condition.insert("type".into(), "Completed".into());
    condition.insert("status".into(), "True".into());
    condition.insert("reason".into(), reason.into());
    condition.insert("message".into(), message.into());
    Some(Value::Array(vec![Value::Object(condition)]))
}

// ---------------------------------------------------------------------------------------
// The print functions, one per upstream print handler
// ---------------------------------------------------------------------------------------

fn print_pod(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = arr(o, &["spec", "initContainers"]);
    // podutil.IsRestartableInitContainer on the spec found by name (a Go map built in spec
    // order, so a duplicated name resolves to the last one).
    let restartable = |container_name: &str| {
        init_specs
            .iter()
            .rev()
            .find(|c| str_at(c, &["name"]) == container_name)
            .is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
    };

    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut total = arr(o, &["spec", "containers"]).len();
    let mut ready: usize = 0;
    // None stands for Go's zero time, earlier than any real one.
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = pod_phase(o);
    let mut reason = phase.to_string();
    let status_reason = str_at(o, &["status", "reason"]);
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    for condition in arr(o, &["status", "conditions"]) {
        if str_at(condition, &["type"]) == "PodScheduled"
            && str_at(condition, &["reason"]) == "SchedulingGated"
        {
            reason = "SchedulingGated".into();
        }
    }

    total += init_specs
        .iter()
        .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
        .count();

    let mut initializing = false;
    for (i, cs) in arr(o, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let restart_count = int(cs, &["restartCount"]);
        restarts += restart_count;
        let finished = parse_time(at(cs, &["lastState", "terminated", "finishedAt"]));
        if finished > last_restart {
            last_restart = finished;
        }
        let sidecar = restartable(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts += restart_count;
            if finished > last_sidecar_restart {
                last_sidecar_restart = finished;
            }
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting = at(cs, &["state", "waiting"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(cs, &["started"]) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            // Initialization failed.
            let terminated_reason = str_at(t, &["reason"]);
            reason = if terminated_reason.is_empty() {
                let signal = int(t, &["signal"]);
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    format!("Init:ExitCode:{}", int(t, &["exitCode"]))
                }
            } else {
                format!("Init:{terminated_reason}")
            };
        } else if let Some(w) = waiting.filter(|w| {
            let r = str_at(w, &["reason"]);
            !r.is_empty() && r != "PodInitializing"
        }) {
            reason = format!("Init:{}", str_at(w, &["reason"]));
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(arr(o, &["status", "conditions"]), "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr(o, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            let finished = parse_time(at(cs, &["lastState", "terminated", "finishedAt"]));
            if finished > last_restart {
                last_restart = finished;
            }
            let waiting_reason = at(cs, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
            let terminated = at(cs, &["state", "terminated"]);
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(t) = terminated {
                let terminated_reason = str_at(t, &["reason"]);
                reason = if !terminated_reason.is_empty() {
                    terminated_reason.to_string()
                } else if int(t, &["signal"]) != 0 {
                    format!("Signal:{}", int(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", int(t, &["exitCode"]))
                };
            } else if bool_at(cs, &["ready"]) && at(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" && has_running {
            // hasPodReadyCondition: any Ready condition that is True.
            let pod_ready = arr(o, &["status", "conditions"])
                .iter()
                .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = at(o, &["metadata", "deletionTimestamp"]).is_some();
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".into();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    // v1-to-internal conversion: podIP wins over podIPs, and a lone podIP fills podIPs.
    let pod_ip = or_default(
        first_non_empty(&[
            str_at(o, &["status", "podIP"]),
            arr(o, &["status", "podIPs"])
                .first()
                .map_or("", |ip| str_at(ip, &["ip"])),
        ]),
        "<none>",
    );

    let gates = arr(o, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(o, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|gate| {
                let wanted = str_at(gate, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == wanted)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };

    vec![
        s(name(o)),
        s(format!("{ready}/{total}")),
        s(reason),
        s(restarts_cell),
        age(o, now),
        s(pod_ip),
        s(or_default(str_at(o, &["spec", "nodeName"]), "<none>")),
        s(or_default(
            str_at(o, &["status", "nominatedNodeName"]),
            "<none>",
        )),
        s(readiness_gates),
    ]
}

/// The pod's phase; the registry sets Pending on create, so a stored pod without one is
/// Pending.
fn pod_phase(o: &Value) -> &str {
    or_default(str_at(o, &["status", "phase"]), "Pending")
}

fn print_pod_template(o: &Value) -> Vec<Value> {
    let (names, images) = container_cells(arr(o, &["template", "spec", "containers"]));
    vec![
        s(name(o)),
        s(names),
        s(images),
        s(format_labels(at(o, &["template", "metadata", "labels"]))),
    ]
}

fn print_pdb(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let bound =
        |field: &str| at(o, &["spec", field]).map_or_else(|| "N/A".to_string(), int_or_string);
    vec![
        s(name(o)),
        s(bound("minAvailable")),
        s(bound("maxUnavailable")),
        Value::from(int(o, &["status", "disruptionsAllowed"])),
        age(o, now),
    ]
}

/// `spec.replicas` of a workload; every workload API defaults it to 1 on write.
fn desired_replicas(o: &Value) -> i64 {
    opt_int(o, &["spec", "replicas"]).unwrap_or(1)
}

fn print_replication_controller(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = container_cells(arr(o, &["spec", "template", "spec", "containers"]));
    vec![
        s(name(o)),
        Value::from(desired_replicas(o)),
        Value::from(int(o, &["status", "replicas"])),
        Value::from(int(o, &["status", "readyReplicas"])),
        age(o, now),
        s(names),
        s(images),
        s(format_labels(at(o, &["spec", "selector"]))),
    ]
}

fn print_replica_set(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = container_cells(arr(o, &["spec", "template", "spec", "containers"]));
    vec![
        s(name(o)),
        Value::from(desired_replicas(o)),
        Value::from(int(o, &["status", "replicas"])),
        Value::from(int(o, &["status", "readyReplicas"])),
        age(o, now),
        s(names),
        s(images),
        s(format_label_selector(at(o, &["spec", "selector"]))),
    ]
}

fn print_daemon_set(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = container_cells(arr(o, &["spec", "template", "spec", "containers"]));
    vec![
        s(name(o)),
        Value::from(int(o, &["status", "desiredNumberScheduled"])),
        Value::from(int(o, &["status", "currentNumberScheduled"])),
        Value::from(int(o, &["status", "numberReady"])),
        Value::from(int(o, &["status", "updatedNumberScheduled"])),
        Value::from(int(o, &["status", "numberAvailable"])),
        s(format_labels(at(
            o,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(o, now),
        s(names),
        s(images),
        s(format_label_selector(at(o, &["spec", "selector"]))),
    ]
}

fn print_job(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(o, &["status", "succeeded"]);
    // With neither completions nor parallelism set, defaulting sets both to 1, which prints
    // the same "N/1" as the parallelism fallback below.
    let completions = match opt_int(o, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = opt_int(o, &["spec", "parallelism"]).unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = parse_time(at(o, &["status", "startTime"]));
    let completion = parse_time(at(o, &["status", "completionTime"]));
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(nanos_between(now, start)),
        (Some(start), Some(end)) => human_duration(nanos_between(end, start)),
    };
    let conditions = arr(o, &["status", "conditions"]);
    let status = if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if at(o, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(arr(o, &["spec", "template", "spec", "containers"]));
    vec![
        s(name(o)),
        s(status),
        s(completions),
        s(duration),
        age(o, now),
        s(names),
        s(images),
        s(format_label_selector(at(o, &["spec", "selector"]))),
    ]
}

fn print_cron_job(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last_schedule = match at(o, &["status", "lastScheduleTime"]) {
        Some(t) => since(parse_time(Some(t)), now),
        None => "<none>".to_string(),
    };
    let time_zone = opt_str(o, &["spec", "timeZone"]).unwrap_or("<none>");
    // printBoolPtr; suspend is defaulted to false on write.
    let suspend = print_bool(opt_bool(o, &["spec", "suspend"]).unwrap_or(false));
    let job_spec = at(o, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
    let (names, images) = container_cells(arr(job_spec, &["template", "spec", "containers"]));
    vec![
        s(name(o)),
        s(str_at(o, &["spec", "schedule"])),
        s(time_zone),
        s(suspend),
        int_cell(arr(o, &["status", "active"]).len()),
        s(last_schedule),
        age(o, now),
        s(names),
        s(images),
        s(format_label_selector(at(job_spec, &["selector"]))),
    ]
}

fn print_service(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Type is defaulted to ClusterIP on write.
    let svc_type = or_default(str_at(o, &["spec", "type"]), "ClusterIP");
    // v1-to-internal conversion: clusterIP fills clusterIPs when those are missing.
    let internal_ip = or_default(
        first_non_empty(&[
            str_at(o, &["spec", "clusterIP"]),
            arr(o, &["spec", "clusterIPs"])
                .first()
                .and_then(Value::as_str)
                .unwrap_or(""),
        ]),
        "<none>",
    );
    let external_ips = strings(arr(o, &["spec", "externalIPs"]));
    let external_ip = match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(at(o, &["status", "loadBalancer"]));
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external_ips.iter().copied());
                results.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(o, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(o, &["spec", "ports"])
        .iter()
        .map(|p| {
            // Protocol is defaulted to TCP on write.
            let protocol = or_default(str_at(p, &["protocol"]), "TCP");
            let port = int(p, &["port"]);
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        s(name(o)),
        s(svc_type),
        s(internal_ip),
        s(external_ip),
        s(ports),
        age(o, now),
        s(format_labels(at(o, &["spec", "selector"]))),
    ]
}

/// loadBalancerStatusStringer in its wide form (the server always renders wide, so it is
/// never clipped): the sorted, de-duplicated ingress IPs, else hostnames.
fn load_balancer_ingress(status: Option<&Value>) -> String {
    let Some(status) = status else {
        return String::new();
    };
    let set: BTreeSet<&str> = arr(status, &["ingress"])
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn print_ingress(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class_name = opt_str(o, &["spec", "ingressClassName"]).unwrap_or("<none>");
    // formatHosts: at most three hosts, then "+ N more..." counting every rule.
    let rules = arr(o, &["spec", "rules"]);
    let max = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == max {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    let hosts = if list.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", list.join(","), rules.len() - max)
    } else {
        list.join(",")
    };
    let ports = if arr(o, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        s(name(o)),
        s(class_name),
        s(hosts),
        s(load_balancer_ingress(at(o, &["status", "loadBalancer"]))),
        s(ports),
        age(o, now),
    ]
}

fn print_ingress_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match at(o, &["spec", "parameters"]) {
        Some(p) => {
            let mut text = str_at(p, &["kind"]).to_string();
            if let Some(group) = opt_str(p, &["apiGroup"]) {
                text.push('.');
                text.push_str(group);
            }
            text.push('/');
            text.push_str(str_at(p, &["name"]));
            text
        }
        None => "<none>".to_string(),
    };
    vec![
        s(name(o)),
        s(str_at(o, &["spec", "controller"])),
        s(parameters),
        age(o, now),
    ]
}

fn print_stateful_set(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = container_cells(arr(o, &["spec", "template", "spec", "containers"]));
    vec![
        s(name(o)),
        s(format!(
            "{}/{}",
            int(o, &["status", "readyReplicas"]),
            desired_replicas(o)
        )),
        age(o, now),
        s(names),
        s(images),
    ]
}

fn print_endpoints(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![s(name(o)), s(format_endpoints(o)), age(o, now)]
}

/// formatEndpoints with every port: the first three "ip:port" (or bare IPs for a subset
/// without ports), then "+ N more...".
fn format_endpoints(o: &Value) -> String {
    let subsets = arr(o, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = arr(subset, &["addresses"]);
        let ports = arr(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == max {
                    more = true;
                    break;
                }
                list.push(str_at(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == max {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(address, &["ip"]),
                    int(port, &["port"]),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - max)
    } else {
        joined
    }
}

/// net.JoinHostPort: IPv6 addresses are bracketed.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn print_endpoint_slice(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let max = 3;
    let ports: Vec<String> = arr(o, &["ports"])
        .iter()
        .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
            (Some(port), _) => port.to_string(),
            (None, Some(port_name)) => port_name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr(o, &["endpoints"])
        .iter()
        .flat_map(|e| strings(arr(e, &["addresses"])))
        .map(str::to_string)
        .collect();
    vec![
        s(name(o)),
        s(str_at(o, &["addressType"])),
        s(list_with_more(&ports, max)),
        s(list_with_more(&addresses, max)),
        age(o, now),
    ]
}

/// listWithMoreString over a full list: the first `max`, "+ N more...", "<unset>" if empty.
fn list_with_more(all: &[String], max: usize) -> String {
    if all.len() > max {
        format!("{} + {} more...", all[..max].join(","), all.len() - max)
    } else if all.is_empty() {
        "<unset>".to_string()
    } else {
        all.join(",")
    }
}

fn print_node(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Only the Ready condition is summarized; a repeated type resolves to the last entry.
    let mut status: Vec<&str> = Vec::new();
    if let Some(ready) = arr(o, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready")
    {
        status.push(if str_at(ready, &["status"]) == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if bool_at(o, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }

    // findNodeRoles: node-role.kubernetes.io/<role> keys and kubernetes.io/role values.
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = at(o, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == "kubernetes.io/role" {
                let value = value.as_str().unwrap_or("");
                if !value.is_empty() {
                    roles.insert(value);
                }
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };

    let address = |address_type: &str| {
        arr(o, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == address_type)
            .map_or("<none>", |a| str_at(a, &["address"]))
    };
    let info = |field: &str| or_default(str_at(o, &["status", "nodeInfo", field]), "<unknown>");
    vec![
        s(name(o)),
        s(status.join(",")),
        s(roles),
        age(o, now),
        s(str_at(o, &["status", "nodeInfo", "kubeletVersion"])),
        s(address("InternalIP")),
        s(address("ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

/// printEvent, for core/v1 Events and for events.k8s.io/v1 ones, whose fields convert to
/// the same internal Event under other names.
fn print_event(o: &Value, now: DateTime<Utc>, events_api: bool) -> Vec<Value> {
    let key = |core: &'static str, events: &'static str| if events_api { events } else { core };
    let first_time = parse_time(at(o, &[key("firstTimestamp", "deprecatedFirstTimestamp")]));
    let first_seen = match first_time {
        Some(t) => since(Some(t), now),
        None => since(parse_time(at(o, &["eventTime"])), now),
    };
    let last_time = parse_time(at(o, &[key("lastTimestamp", "deprecatedLastTimestamp")]));
    let mut last_seen = match last_time {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int(o, &[key("count", "deprecatedCount")]);
    if let Some(series) = at(o, &["series"]) {
        last_seen = since(parse_time(at(series, &["lastObservedTime"])), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }

    let involved = at(o, &[key("involvedObject", "regarding")]).unwrap_or(&Value::Null);
    let kind = str_at(involved, &["kind"]).to_lowercase();
    let involved_name = str_at(involved, &["name"]);
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };

    let source = at(o, &[key("source", "deprecatedSource")]).unwrap_or(&Value::Null);
    let component = first_non_empty(&[
        str_at(source, &["component"]),
        str_at(o, &[key("reportingComponent", "reportingController")]),
    ]);
    let instance = first_non_empty(&[str_at(source, &["host"]), str_at(o, &["reportingInstance"])]);
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };

    vec![
        s(last_seen),
        s(str_at(o, &["type"])),
        s(str_at(o, &["reason"])),
        s(target),
        s(str_at(involved, &["fieldPath"])),
        s(source),
        s(str_at(o, &[key("message", "note")]).trim()),
        s(first_seen),
        Value::from(count),
        s(name(o)),
    ]
}

fn print_namespace(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // The phase is defaulted to Active on write.
    vec![
        s(name(o)),
        s(or_default(str_at(o, &["status", "phase"]), "Active")),
        age(o, now),
    ]
}

fn print_secret(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // v1-to-internal conversion merges stringData into data.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        if let Some(m) = at(o, &[field]).and_then(Value::as_object) {
            keys.extend(m.keys().map(String::as_str));
        }
    }
    vec![
        s(name(o)),
        // The type is defaulted to Opaque on write.
        s(or_default(str_at(o, &["type"]), "Opaque")),
        int_cell(keys.len()),
        age(o, now),
    ]
}

fn print_persistent_volume(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let claim = match at(o, &["spec", "claimRef"]) {
        Some(c) => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
        None => String::new(),
    };
    // Phase, reclaim policy and volume mode are defaulted on write (Pending, Retain,
    // Filesystem).
    let phase = if at(o, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        or_default(str_at(o, &["status", "phase"]), "Pending")
    };
    vec![
        s(name(o)),
        s(quantity(at(o, &["spec", "capacity", "storage"]))),
        s(access_modes(arr(o, &["spec", "accessModes"]))),
        s(or_default(
            str_at(o, &["spec", "persistentVolumeReclaimPolicy"]),
            "Retain",
        )),
        s(phase),
        s(claim),
        s(storage_class_of(o)),
        s(opt_str(o, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        s(str_at(o, &["status", "reason"])),
        age(o, now),
        s(opt_str(o, &["spec", "volumeMode"]).unwrap_or("Filesystem")),
    ]
}

fn print_persistent_volume_claim(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = if at(o, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        or_default(str_at(o, &["status", "phase"]), "Pending")
    };
    let volume_name = str_at(o, &["spec", "volumeName"]);
    let (capacity, modes) = if volume_name.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(o, &["status", "capacity", "storage"])),
            access_modes(arr(o, &["status", "accessModes"])),
        )
    };
    vec![
        s(name(o)),
        s(phase),
        s(volume_name),
        s(capacity),
        s(modes),
        s(storage_class_of(o)),
        s(opt_str(o, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        age(o, now),
        s(opt_str(o, &["spec", "volumeMode"]).unwrap_or("Filesystem")),
    ]
}

/// GetPersistentVolume(Claim)Class: the beta annotation wins over spec.storageClassName.
fn storage_class_of(o: &Value) -> String {
    if let Some(class) = annotation(o, "volume.beta.kubernetes.io/storage-class") {
        return class.to_string();
    }
    str_at(o, &["spec", "storageClassName"]).to_string()
}

/// GetAccessModesAsString: the short forms, in a fixed order, each once.
fn access_modes(modes: &[Value]) -> String {
    let present = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| present(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

fn print_component_status(o: &Value) -> Vec<Value> {
    let (status, message, error) = match arr(o, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Healthy")
    {
        Some(c) => (
            if str_at(c, &["status"]) == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, &["message"]),
            str_at(c, &["error"]),
        ),
        None => ("Unknown", "", ""),
    };
    vec![s(name(o)), s(status), s(message), s(error)]
}

fn print_deployment(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let selector = match label_selector_string(at(o, &["spec", "selector"])) {
        Some(text) => text,
        None => "<invalid>".to_string(),
    };
    let (names, images) = container_cells(arr(o, &["spec", "template", "spec", "containers"]));
    vec![
        s(name(o)),
        s(format!(
            "{}/{}",
            int(o, &["status", "readyReplicas"]),
            desired_replicas(o)
        )),
        Value::from(int(o, &["status", "updatedReplicas"])),
        Value::from(int(o, &["status", "availableReplicas"])),
        age(o, now),
        s(names),
        s(images),
        s(selector),
    ]
}

fn print_hpa(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let target = at(o, &["spec", "scaleTargetRef"]).unwrap_or(&Value::Null);
    let reference = format!(
        "{}/{}",
        str_at(target, &["kind"]),
        str_at(target, &["name"])
    );
    // minReplicas is defaulted to 1 on write.
    let min_pods = opt_int(o, &["spec", "minReplicas"]).unwrap_or(1);
    vec![
        s(name(o)),
        s(reference),
        s(hpa_metrics(o)),
        s(min_pods.to_string()),
        Value::from(int(o, &["spec", "maxReplicas"])),
        Value::from(int(o, &["status", "currentReplicas"])),
        age(o, now),
    ]
}

/// The metric specs and statuses as autoscaling/v2 shapes them. An autoscaling/v1 object's
/// CPU target converts to one Resource metric; with no metric at all, v2 defaulting (applied
/// on every read from storage) adds an 80% CPU utilization target.
fn hpa_metric_lists(o: &Value) -> (Vec<Value>, Vec<Value>) {
    let specs = arr(o, &["spec", "metrics"]);
    if !specs.is_empty() {
        return (
            specs.to_vec(),
            arr(o, &["status", "currentMetrics"]).to_vec(),
        );
    }
    let utilization = opt_int(o, &["spec", "targetCPUUtilizationPercentage"]).unwrap_or(80);
    let spec = serde_json::json!({
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}},
    });
    let statuses = match opt_int(o, &["status", "currentCPUUtilizationPercentage"]) {
        Some(current) => vec![serde_json::json!({
            "type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": current}},
        })],
        None => arr(o, &["status", "currentMetrics"]).to_vec(),
    };
    (vec![spec], statuses)
}

/// formatHPAMetrics: "current/target" per metric, statuses matched by index, at most two.
fn hpa_metrics(o: &Value) -> String {
    let (specs, statuses) = hpa_metric_lists(o);
    if specs.is_empty() {
        return "<none>".into();
    }
    let unknown = || "<unknown>".to_string();
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        // The status's source of the given type, if the status at this index has one.
        let status_source = |field: &str| status.and_then(|st| at(st, &[field]));
        let entry = match str_at(spec, &["type"]) {
            source_type @ ("External" | "Object") => {
                let field = if source_type == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = at(spec, &[field, "target"]).unwrap_or(&Value::Null);
                let source = status_source(field);
                if let Some(average) = at(target, &["averageValue"]) {
                    let current = source
                        .and_then(|st| at(st, &["current", "averageValue"]))
                        .map_or_else(unknown, |q| quantity(Some(q)));
                    format!("{current}/{} (avg)", quantity(Some(average)))
                } else {
                    let current = source
                        .map_or_else(unknown, |st| quantity_ptr(at(st, &["current", "value"])));
                    format!("{current}/{}", quantity_ptr(at(target, &["value"])))
                }
            }
            "Pods" => {
                let current = status_source("pods").map_or_else(unknown, |st| {
                    quantity_ptr(at(st, &["current", "averageValue"]))
                });
                format!(
                    "{current}/{}",
                    quantity_ptr(at(spec, &["pods", "target", "averageValue"]))
                )
            }
            source_type @ ("Resource" | "ContainerResource") => {
                let field = if source_type == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let resource_name = str_at(spec, &[field, "name"]);
                let target = at(spec, &[field, "target"]).unwrap_or(&Value::Null);
                let source = status_source(field);
                if let Some(average) = at(target, &["averageValue"]) {
                    let current = source.map_or_else(unknown, |st| {
                        quantity_ptr(at(st, &["current", "averageValue"]))
                    });
                    format!("{resource_name}: {current}/{}", quantity(Some(average)))
                } else {
                    let current = source
                        .and_then(|st| opt_int(st, &["current", "averageUtilization"]))
                        .map_or_else(unknown, |u| format!("{u}%"));
                    let target = opt_int(target, &["averageUtilization"])
                        .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                    format!("{resource_name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    let max = 2;
    if list.len() > max {
        let count = list.len();
        list.truncate(max);
        format!("{} + {} more...", list.join(", "), count - max)
    } else {
        list.join(", ")
    }
}

fn print_role_binding(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role_ref = format!(
        "{}/{}",
        str_at(o, &["roleRef", "kind"]),
        str_at(o, &["roleRef", "name"])
    );
    // rbac.SubjectsStrings.
    let mut users: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut service_accounts: Vec<String> = Vec::new();
    for subject in arr(o, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "ServiceAccount" => service_accounts.push(format!(
                "{}/{subject_name}",
                str_at(subject, &["namespace"])
            )),
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        s(name(o)),
        s(role_ref),
        age(o, now),
        s(users.join(", ")),
        s(groups.join(", ")),
        s(service_accounts.join(", ")),
    ]
}

fn print_csr(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // extractCSRStatus.
    let (mut approved, mut denied, mut failed) = (false, false, false);
    for condition in arr(o, &["status", "conditions"]) {
        match str_at(condition, &["type"]) {
            "Approved" => approved = true,
            "Denied" => denied = true,
            "Failed" => failed = true,
            _ => {}
        }
    }
    let mut status = if denied {
        "Denied"
    } else if approved {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if failed {
        status.push_str(",Failed");
    }
    if !str_at(o, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    let requested_duration = match opt_int(o, &["spec", "expirationSeconds"]) {
        Some(seconds) => human_duration(seconds.saturating_mul(1_000_000_000)),
        None => "<none>".to_string(),
    };
    vec![
        s(name(o)),
        age(o, now),
        s(or_default(str_at(o, &["spec", "signerName"]), "<none>")),
        s(str_at(o, &["spec", "username"])),
        s(requested_duration),
        s(status),
    ]
}

fn print_storage_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // storageutil.IsDefaultAnnotation: the GA or the beta annotation.
    let mut display = name(o).to_string();
    if annotation(o, "storageclass.kubernetes.io/is-default-class") == Some("true")
        || annotation(o, "storageclass.beta.kubernetes.io/is-default-class") == Some("true")
    {
        display.push_str(" (default)");
    }
    vec![
        s(display),
        s(str_at(o, &["provisioner"])),
        s(opt_str(o, &["reclaimPolicy"]).unwrap_or("Delete")),
        s(opt_str(o, &["volumeBindingMode"]).unwrap_or("Immediate")),
        Value::Bool(bool_at(o, &["allowVolumeExpansion"])),
        age(o, now),
    ]
}

fn print_controller_revision(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // metav1.GetControllerOf, then formatResourceName with the owner's group and kind.
    let controller = arr(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| bool_at(r, &["controller"]))
        .map_or_else(
            || "<none>".to_string(),
            |r| {
                let api_version = str_at(r, &["apiVersion"]);
                let group = match api_version.split_once('/') {
                    Some((group, _)) => group,
                    None => "",
                };
                let kind = str_at(r, &["kind"]);
                let owner = str_at(r, &["name"]);
                if group.is_empty() && kind.is_empty() {
                    owner.to_string()
                } else if group.is_empty() {
                    format!("{}/{owner}", kind.to_lowercase())
                } else {
                    format!("{}.{}/{owner}", kind.to_lowercase(), group.to_lowercase())
                }
            },
        );
    vec![
        s(name(o)),
        s(controller),
        Value::from(int(o, &["revision"])),
        age(o, now),
    ]
}

fn print_resource_quota(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    if let Some(hard) = at(o, &["status", "hard"]).and_then(Value::as_object) {
        let mut resources: Vec<&String> = hard.keys().collect();
        resources.sort();
        for resource in resources {
            let used = quantity(at(o, &["status", "used", resource.as_str()]));
            let entry = format!("{resource}: {used}/{}", quantity(hard.get(resource)));
            let mut pieces = resource.split('.');
            let first = pieces.next();
            if first == Some("limits") && pieces.next().is_some() {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    vec![
        s(name(o)),
        s(requests.join(", ")),
        s(limits.join(", ")),
        age(o, now),
    ]
}

fn print_csi_driver(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // The booleans and the lifecycle modes are defaulted on write (attachRequired true,
    // the others false, modes [Persistent]).
    let modes = strings(arr(o, &["spec", "volumeLifecycleModes"]));
    let modes = if at(o, &["spec", "volumeLifecycleModes"]).is_none() {
        "Persistent".to_string()
    } else if modes.is_empty() {
        "<none>".to_string()
    } else {
        modes.join(",")
    };
    let token_requests = match at(o, &["spec", "tokenRequests"]) {
        Some(requests) => requests
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| str_at(r, &["audience"]))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        None => "<unset>".to_string(),
    };
    vec![
        s(name(o)),
        Value::Bool(opt_bool(o, &["spec", "attachRequired"]).unwrap_or(true)),
        Value::Bool(bool_at(o, &["spec", "podInfoOnMount"])),
        Value::Bool(bool_at(o, &["spec", "storageCapacity"])),
        s(token_requests),
        Value::Bool(bool_at(o, &["spec", "requiresRepublish"])),
        s(modes),
        age(o, now),
    ]
}

fn print_admission_policy(o: &Value, now: DateTime<Utc>, rules: &str) -> Vec<Value> {
    let param_kind = match at(o, &["spec", "paramKind"]) {
        Some(p) => format!("{}/{}", str_at(p, &["apiVersion"]), str_at(p, &["kind"])),
        None => "<unset>".to_string(),
    };
    vec![
        s(name(o)),
        int_cell(arr(o, &["spec", rules]).len()),
        s(param_kind),
        age(o, now),
    ]
}

fn print_admission_policy_binding(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let param = match at(o, &["spec", "paramRef"]) {
        Some(p) => {
            let param_name = str_at(p, &["name"]);
            let namespace = str_at(p, &["namespace"]);
            if !param_name.is_empty() {
                if namespace.is_empty() {
                    // Can't tell from here whether the param is cluster-scoped.
                    format!("*/{param_name}")
                } else {
                    format!("{namespace}/{param_name}")
                }
            } else if let Some(selector) = at(p, &["selector"]) {
                label_selector_go_string(selector)
            } else {
                "<unset>".to_string()
            }
        }
        None => "<unset>".to_string(),
    };
    vec![
        s(name(o)),
        s(str_at(o, &["spec", "policyName"])),
        s(param),
        age(o, now),
    ]
}

/// matchingPrecedence, defaulted to 1000 on write.
fn flow_schema_precedence(o: &Value) -> i64 {
    match int(o, &["spec", "matchingPrecedence"]) {
        0 => 1000,
        precedence => precedence,
    }
}

fn print_flow_schema(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let distinguisher = match at(o, &["spec", "distinguisherMethod"]) {
        Some(method) => str_at(method, &["type"]),
        None => "<none>",
    };
    let missing = arr(o, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Dangling")
        .map_or("?", |c| str_at(c, &["status"]));
    vec![
        s(name(o)),
        s(str_at(o, &["spec", "priorityLevelConfiguration", "name"])),
        Value::from(flow_schema_precedence(o)),
        s(distinguisher),
        age(o, now),
        s(missing),
    ]
}

fn print_priority_level(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let none = || s("<none>");
    let (mut shares, mut queues, mut hand_size, mut queue_length) =
        (none(), none(), none(), none());
    if let Some(limited) = at(o, &["spec", "limited"]) {
        // flowcontrol/v1 defaulting: 30 shares; queuing 64 queues, hand size 8, length 50.
        shares = Value::from(opt_int(limited, &["nominalConcurrencyShares"]).unwrap_or(30));
        if let Some(queuing) = at(limited, &["limitResponse", "queuing"]) {
            queues = Value::from(opt_int(queuing, &["queues"]).unwrap_or(64));
            hand_size = Value::from(opt_int(queuing, &["handSize"]).unwrap_or(8));
            queue_length = Value::from(opt_int(queuing, &["queueLengthLimit"]).unwrap_or(50));
        }
    }
    vec![
        s(name(o)),
        s(str_at(o, &["spec", "type"])),
        shares,
        queues,
        hand_size,
        queue_length,
        age(o, now),
    ]
}

fn print_storage_version(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let versions: Vec<String> = arr(o, &["status", "storageVersions"])
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                str_at(v, &["apiServerID"]),
                str_at(v, &["encodingVersion"])
            )
        })
        .collect();
    vec![
        s(name(o)),
        s(opt_str(o, &["status", "commonEncodingVersion"]).unwrap_or("<unset>")),
        s(list_with_more(&versions, 3)),
        age(o, now),
    ]
}

fn resource_claim_state(o: &Value) -> String {
    let deleted = at(o, &["metadata", "deletionTimestamp"]).is_some();
    let mut states: Vec<&str> = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if at(o, &["status", "allocation"]).is_none() {
        if !deleted {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if !arr(o, &["status", "reservedFor"]).is_empty() {
            states.push("reserved");
        }
    }
    states.join(",")
}

fn print_ip_address(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parent = match at(o, &["spec", "parentRef"]) {
        Some(p) => {
            let resource = str_at(p, &["resource"]);
            let group = str_at(p, &["group"]);
            let mut text = if group.is_empty() {
                resource.to_lowercase()
            } else {
                format!("{resource}.{group}").to_lowercase()
            };
            let namespace = str_at(p, &["namespace"]);
            if !namespace.is_empty() {
                text.push('/');
                text.push_str(namespace);
            }
            text.push('/');
            text.push_str(str_at(p, &["name"]));
            text
        }
        None => "<none>".to_string(),
    };
    vec![s(name(o)), s(parent), age(o, now)]
}

/// kube-aggregator's APIService table: the backing service and the Available condition.
fn print_api_service(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let service = match at(o, &["spec", "service"]) {
        Some(svc) => format!("{}/{}", str_at(svc, &["namespace"]), str_at(svc, &["name"])),
        None => "Local".to_string(),
    };
    let available = match arr(o, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Available")
    {
        Some(c) => {
            let status = str_at(c, &["status"]);
            let reason = str_at(c, &["reason"]);
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        }
        None => "Unknown".to_string(),
    };
    vec![s(name(o)), s(service), s(available), age(o, now)]
}

// ---------------------------------------------------------------------------------------
// Shared formatting helpers
// ---------------------------------------------------------------------------------------

/// layoutContainerCells: names and images, each comma-joined.
fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// labels.FormatLabels: "k=v" pairs sorted as whole strings, "<none>" when empty.
fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// metav1.FormatLabelSelector: the selector's string, "<none>" for an empty (or absent)
/// one, "<error>" when it does not convert.
fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        None => "<error>".into(),
        Some(text) if text.is_empty() => "<none>".into(),
        Some(text) => text,
    }
}

/// metav1.LabelSelectorAsSelector(..).String(), or None where the conversion fails (an
/// unknown operator, a malformed key or value). Absent and empty selectors both render "".
fn label_selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|v| v.is_object()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            if !valid_label_key(key) || !valid_label_value(value) {
                return None;
            }
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expression in arr(selector, &["matchExpressions"]) {
        let key = str_at(expression, &["key"]);
        let mut values: Vec<&str> = strings(arr(expression, &["values"]));
        if !valid_label_key(key) || !values.iter().all(|v| valid_label_value(v)) {
            return None;
        }
        let text = match str_at(expression, &["operator"]) {
            op @ ("In" | "NotIn") => {
                if values.is_empty() {
                    return None;
                }
                values.sort_unstable();
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", values.join(","))
            }
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), text));
    }
    // Selector.Add sorts the requirements by key (stably, at these sizes).
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The generated Go `(*metav1.LabelSelector).String()`, which the admission policy binding
/// printer uses for a selector param.
fn label_selector_go_string(selector: &Value) -> String {
    let mut labels: Vec<(&String, &str)> = at(selector, &["matchLabels"])
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let labels: String = labels.iter().map(|(k, v)| format!("{k}: {v},")).collect();
    let expressions: String = arr(selector, &["matchExpressions"])
        .iter()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                str_at(e, &["key"]),
                str_at(e, &["operator"]),
                strings(arr(e, &["values"])).join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

/// validation.IsQualifiedName: an optional DNS-subdomain prefix and a name part.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name_part) = match key.split_once('/') {
        Some((prefix, name_part)) => (Some(prefix), name_part),
        None => (None, key),
    };
    if name_part.contains('/') {
        return false;
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 || !is_dns1123_subdomain(prefix) {
            return false;
        }
    }
    !name_part.is_empty() && name_part.len() <= 63 && is_qualified_name_part(name_part)
}

/// validation.IsValidLabelValue.
fn valid_label_value(value: &str) -> bool {
    value.is_empty() || (value.len() <= 63 && is_qualified_name_part(value))
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Lower-case RFC 1123 labels joined by dots.
fn is_dns1123_subdomain(text: &str) -> bool {
    text.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && (last.is_ascii_lowercase() || last.is_ascii_digit())
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            }
            _ => false,
        }
    })
}

/// intstr.IntOrString.String().
fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()),
        other => other.to_string(),
    }
}

fn print_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// Whether the first condition of the type is True (hasJobCondition,
/// isPodInitializedConditionTrue).
fn condition_true(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .find(|c| str_at(c, &["type"]) == condition_type)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    at(o, &["metadata", "annotations", key]).and_then(Value::as_str)
}

fn first_non_empty<'a>(candidates: &[&'a str]) -> &'a str {
    candidates
        .iter()
        .copied()
        .find(|c| !c.is_empty())
        .unwrap_or("")
}

fn or_default<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

/// Seconds from the Unix epoch to Go's zero time, 0001-01-01T00:00:00Z, which
/// `metav1.Time.IsZero` treats as unset.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// A metav1.Time / MicroTime as served (RFC 3339); None when absent, null, malformed or
/// Go's zero time.
fn parse_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?;
    let time = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    if time.timestamp() == GO_ZERO_TIME_UNIX && time.timestamp_subsec_nanos() == 0 {
        return None;
    }
    Some(time)
}

/// translateTimestampSince: the time elapsed up to `now`, "<unknown>" for an unset time.
fn since(time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match time {
        Some(t) => human_duration(nanos_between(now, t)),
        None => "<unknown>".into(),
    }
}

/// `later - earlier` in nanoseconds, saturating as Go's `Time.Sub` does.
fn nanos_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> i64 {
    later
        .signed_duration_since(earlier)
        .num_nanoseconds()
        .unwrap_or(if later >= earlier { i64::MAX } else { i64::MIN })
}

/// The default table's Created At: `Time.UTC().Format(time.RFC3339)`, whole seconds, and
/// Go's zero time when unset.
fn rfc3339_or_zero(time: Option<DateTime<Utc>>) -> String {
    match time {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn age(o: &Value, now: DateTime<Utc>) -> Value {
    s(since(
        parse_time(at(o, &["metadata", "creationTimestamp"])),
        now,
    ))
}

// ---------------------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------------------

/// `resource.Quantity.String()` of a quantity as served: the canonical form upstream
/// re-serializes every quantity in ("1000m" is "1", "0.5Gi" is "512Mi"). An absent
/// quantity is the zero one, "0"; one that does not parse is shown as written.
fn quantity(value: Option<&Value>) -> String {
    let text = match value {
        None => return "0".into(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return other.to_string(),
    };
    canonical_quantity(&text).unwrap_or(text)
}

/// `(*resource.Quantity).String()` of a pointer field: "<nil>" when absent.
fn quantity_ptr(value: Option<&Value>) -> String {
    match value {
        None => "<nil>".into(),
        some => quantity(some),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuantityFormat {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// Parses a quantity the way `resource.ParseQuantity` does and prints it canonically
/// (`Quantity.CanonicalizeBytes`). None for what does not parse or overflows an i128.
fn canonical_quantity(text: &str) -> Option<String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    match bytes.first() {
        Some(b'-') => {
            negative = true;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let int_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let integer = &text[int_start..pos];
    let mut fraction = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        fraction = &text[frac_start..pos];
    }
    if integer.is_empty() && fraction.is_empty() {
        return None;
    }
    let suffix = &text[pos..];

    let (base, exponent, format) = match suffix {
        "" => (10, 0, QuantityFormat::DecimalSi),
        "n" => (10, -9, QuantityFormat::DecimalSi),
        "u" => (10, -6, QuantityFormat::DecimalSi),
        "m" => (10, -3, QuantityFormat::DecimalSi),
        "k" => (10, 3, QuantityFormat::DecimalSi),
        "M" => (10, 6, QuantityFormat::DecimalSi),
        "G" => (10, 9, QuantityFormat::DecimalSi),
        "T" => (10, 12, QuantityFormat::DecimalSi),
        "P" => (10, 15, QuantityFormat::DecimalSi),
        "E" => (10, 18, QuantityFormat::DecimalSi),
        "Ki" => (2, 10, QuantityFormat::BinarySi),
        "Mi" => (2, 20, QuantityFormat::BinarySi),
        "Gi" => (2, 30, QuantityFormat::BinarySi),
        "Ti" => (2, 40, QuantityFormat::BinarySi),
        "Pi" => (2, 50, QuantityFormat::BinarySi),
        "Ei" => (2, 60, QuantityFormat::BinarySi),
        _ => {
            let digits = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (
                10,
                digits.parse::<i32>().ok()?,
                QuantityFormat::DecimalExponent,
            )
        }
    };

    // value = mantissa * 10^scale
    let digits = format!("{integer}{fraction}");
    let mut mantissa: i128 = digits.parse().ok()?;
    let mut scale: i32 = -i32::try_from(fraction.len()).ok()?;
    if base == 2 {
        mantissa = mantissa.checked_mul(1i128.checked_shl(u32::try_from(exponent).ok()?)?)?;
    } else {
        scale = scale.checked_add(exponent)?;
    }
    if negative {
        mantissa = -mantissa;
    }
    // Precision finer than nano rounds away from zero to nano.
    if scale < -9 {
        let divisor = pow10(u32::try_from(-9 - scale).ok()?)?;
        let quotient = mantissa / divisor;
        mantissa = if mantissa % divisor == 0 {
            quotient
        } else if mantissa > 0 {
            quotient + 1
        } else {
            quotient - 1
        };
        scale = -9;
    }
    if mantissa == 0 {
        return Some("0".into());
    }

    let mut format = format;
    let mut integral: Option<i128> = None;
    if format == QuantityFormat::BinarySi {
        // Values under 1024 in magnitude, or with a fractional part, print as DecimalSI.
        let whole = if scale >= 0 {
            mantissa.checked_mul(pow10(u32::try_from(scale).ok()?)?)
        } else {
            let divisor = pow10(u32::try_from(-scale).ok()?)?;
            (mantissa % divisor == 0).then(|| mantissa / divisor)
        };
        match whole {
            Some(w) if w <= -1024 || w >= 1024 => integral = Some(w),
            _ => format = QuantityFormat::DecimalSi,
        }
    }

    if let Some(mut whole) = integral {
        let mut power = 0;
        while whole % 1024 == 0 {
            whole /= 1024;
            power += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].get(power)?;
        return Some(format!("{whole}{suffix}"));
    }

    // AsCanonicalBytes: strip trailing zeros into the exponent, then lower the exponent to
    // a multiple of three.
    while mantissa % 10 == 0 {
        mantissa /= 10;
        scale += 1;
    }
    let adjust = scale.rem_euclid(3);
    mantissa = mantissa.checked_mul(pow10(u32::try_from(adjust).ok()?)?)?;
    scale -= adjust;
    let suffix = match (format, scale) {
        (QuantityFormat::DecimalExponent, 0) => String::new(),
        (QuantityFormat::DecimalExponent, e) => format!("e{e}"),
        (_, -9) => "n".into(),
        (_, -6) => "u".into(),
        (_, -3) => "m".into(),
        (_, 0) => String::new(),
        (_, 3) => "k".into(),
        (_, 6) => "M".into(),
        (_, 9) => "G".into(),
        (_, 12) => "T".into(),
        (_, 15) => "P".into(),
        (_, 18) => "E".into(),
        (_, e) => format!("e{e}"),
    };
    Some(format!("{mantissa}{suffix}"))
}

fn pow10(exponent: u32) -> Option<i128> {
    10i128.checked_pow(exponent)
}

// ---------------------------------------------------------------------------------------
// JSON access
// ---------------------------------------------------------------------------------------

/// The value at `path`; None when missing or null (Go's nil pointer).
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = v;
    for key in path {
        current = current.get(key)?;
    }
    (!current.is_null()).then_some(current)
}

fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The string at `path`, or Go's zero value "".
fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    let value = at(v, path)?;
    value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or 0.
fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// The boolean at `path`, or false.
fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The array at `path`, or an empty one.
fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn map_len(v: &Value, path: &[&str]) -> usize {
    at(v, path).and_then(Value::as_object).map_or(0, Map::len)
}

/// The string elements of an array.
fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v.as_str().unwrap_or("")).collect()
}

fn name(o: &Value) -> &str {
    str_at(o, &["metadata", "name"])
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn int_cell(count: usize) -> Value {
    Value::from(i64::try_from(count).unwrap_or(i64::MAX))
}

/// Column descriptions: upstream fills them from the Go types' `SwaggerDoc()`, which is the
/// same text as the field docs in the OpenAPI schema. Most come from the v1.33 schema; where
/// upstream reads an older group-version (extensions/v1beta1, batch/v1beta1, rbac/v1beta1,
/// autoscaling/v2beta1, certificates/v1beta1, discovery/v1beta1) its own text is used.
#[allow(clippy::doc_markdown)]
mod doc {
    pub(super) const META_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub(super) const META_CREATION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    pub(super) const POD_STATUS_POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
    pub(super) const POD_SPEC_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
    pub(super) const POD_STATUS_NOMINATED: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
    pub(super) const POD_SPEC_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
    pub(super) const POD_SPEC_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
    pub(super) const RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
    pub(super) const RC_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
    pub(super) const RC_STATUS_READY: &str =
        "The number of ready replicas for this replication controller.";
    pub(super) const SVC_SPEC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
    pub(super) const SVC_SPEC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
    pub(super) const SVC_SPEC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
    pub(super) const SVC_SPEC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
    pub(super) const SVC_SPEC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
    pub(super) const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
    pub(super) const NODE_INFO_KUBELET: &str = "Kubelet Version reported by the node.";
    pub(super) const NODE_INFO_OS_IMAGE: &str =
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
    pub(super) const NODE_INFO_KERNEL: &str =
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
    pub(super) const NODE_INFO_RUNTIME: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
    pub(super) const NODE_STATUS_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
    pub(super) const EVENT_LAST_TIMESTAMP: &str =
        "The time at which the most recent occurrence of this event was recorded.";
    pub(super) const EVENT_TYPE: &str =
        "Type of this event (Normal, Warning), new types could be added in the future";
    pub(super) const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
    pub(super) const EVENT_INVOLVED: &str = "The object that this event is about.";
    pub(super) const EVENT_SOURCE: &str =
        "The component reporting this event. Should be a short machine understandable string.";
    pub(super) const EVENT_MESSAGE: &str =
        "A human-readable description of the status of this operation.";
    pub(super) const EVENT_FIRST_TIMESTAMP: &str =
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
    pub(super) const EVENT_COUNT: &str = "The number of times this event has occurred.";
    pub(super) const OBJREF_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
    pub(super) const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
    pub(super) const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
    pub(super) const SA_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
    pub(super) const PV_SPEC_CAPACITY: &str = "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity";
    pub(super) const PV_SPEC_ACCESS_MODES: &str = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes";
    pub(super) const PV_SPEC_RECLAIM: &str = "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming";
    pub(super) const PV_SPEC_CLAIM_REF: &str = "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding";
    pub(super) const PV_SPEC_VOLUME_MODE: &str = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.";
    pub(super) const PV_STATUS_PHASE: &str = "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase";
    pub(super) const PV_STATUS_REASON: &str = "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.";
    pub(super) const PVC_STATUS_PHASE: &str =
        "phase represents the current phase of PersistentVolumeClaim.";
    pub(super) const PVC_STATUS_CAPACITY: &str =
        "capacity represents the actual resources of the underlying volume.";
    pub(super) const PVC_STATUS_ACCESS_MODES: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
    pub(super) const PVC_SPEC_VOLUME_NAME: &str =
        "volumeName is the binding reference to the PersistentVolume backing this claim.";
    pub(super) const PVC_SPEC_VOLUME_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";
    pub(super) const CONFIGMAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
    pub(super) const JOB_STATUS_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
    pub(super) const JOB_SPEC_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const LEASE_SPEC_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
    pub(super) const SC_PROVISIONER: &str = "provisioner indicates the type of the provisioner.";
    pub(super) const SC_RECLAIM: &str = "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.";
    pub(super) const SC_BINDING_MODE: &str = "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.";
    pub(super) const SC_ALLOW_EXPANSION: &str =
        "allowVolumeExpansion shows whether the storage class allow volume expand.";
    pub(super) const VA_SPEC_ATTACHER: &str = "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().";
    pub(super) const VA_SPEC_NODE_NAME: &str =
        "nodeName represents the node that the volume should be attached to.";
    pub(super) const VA_SOURCE_PV: &str =
        "persistentVolumeName represents the name of the persistent volume to attach.";
    pub(super) const VA_STATUS_ATTACHED: &str = "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.";
    pub(super) const CSIDRIVER_ATTACH_REQUIRED: &str = "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the CSIDriverRegistry feature gate is enabled and the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable.";
    pub(super) const CSIDRIVER_POD_INFO: &str = "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false.\n\nThe CSI driver specifies podInfoOnMount as part of driver deployment. If true, Kubelet will pass pod information as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver is responsible for parsing and validating the information passed in as VolumeContext.\n\nThe following VolumeContext will be passed if podInfoOnMount is set to true. This list might grow, but the prefix will be used. \"csi.storage.k8s.io/pod.name\": pod.Name \"csi.storage.k8s.io/pod.namespace\": pod.Namespace \"csi.storage.k8s.io/pod.uid\": string(pod.UID) \"csi.storage.k8s.io/ephemeral\": \"true\" if the volume is an ephemeral inline volume\n                                defined by a CSIVolumeSource, otherwise \"false\"\n\n\"csi.storage.k8s.io/ephemeral\" is a new feature in Kubernetes 1.16. It is only required for drivers which support both the \"Persistent\" and \"Ephemeral\" VolumeLifecycleMode. Other drivers can leave pod info disabled and/or ignore this field. As Kubernetes 1.15 doesn't support this field, drivers can only support one mode when deployed on such a cluster and the deployment determines which mode that is, for example via a command line parameter of the driver.\n\nThis field was immutable in Kubernetes < 1.29 and now is mutable.";
    pub(super) const CSIDRIVER_STORAGE_CAPACITY: &str = "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true.\n\nThe check can be enabled immediately when deploying a driver. In that case, provisioning new volumes with late binding will pause until the driver deployment has published some suitable CSIStorageCapacity object.\n\nAlternatively, the driver can be deployed with the field unset or false and it can be flipped later when storage capacity information has been published.\n\nThis field was immutable in Kubernetes <= 1.22 and now is mutable.";
    pub(super) const CSIDRIVER_TOKEN_REQUESTS: &str = "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext: \"csi.storage.k8s.io/serviceAccount.tokens\": {\n  \"<audience>\": {\n    \"token\": <token>,\n    \"expirationTimestamp\": <expiration timestamp in RFC3339>,\n  },\n  ...\n}\n\nNote: Audience in each TokenRequest should be different and at most one token is empty string. To receive a new token after expiry, RequiresRepublish can be used to trigger NodePublishVolume periodically.";
    pub(super) const CSIDRIVER_REQUIRES_REPUBLISH: &str = "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false.\n\nNote: After a successful initial NodePublishVolume call, subsequent calls to NodePublishVolume should only update the contents of the volume. New mount points will not be seen by a running container.";
    pub(super) const CSIDRIVER_MODES: &str = "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism.\n\nThe other mode is \"Ephemeral\". In this mode, volumes are defined inline inside the pod spec with CSIVolumeSource and their lifecycle is tied to the lifecycle of that pod. A driver has to be aware of this because it is only going to get a NodePublishVolume call for such a volume.\n\nFor more information about implementing this mode, see https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A driver can support one or more of these modes and more modes may be added in the future.\n\nThis field is beta. This field is immutable.";
    pub(super) const CR_REVISION: &str =
        "Revision indicates the revision of the state represented by Data.";
    pub(super) const PC_VALUE: &str = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.";
    pub(super) const PC_GLOBAL_DEFAULT: &str = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.";
    pub(super) const PC_PREEMPTION: &str = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.";
    pub(super) const HPA2_SCALE_TARGET: &str = "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.";
    pub(super) const HPA2_MIN: &str = "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.";
    pub(super) const HPA2_MAX: &str = "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.";
    pub(super) const HPA2_CURRENT: &str = "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.";
    pub(super) const CSR1_EXPIRATION: &str = "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes.";
    pub(super) const VAC_DRIVER: &str = "Name of the CSI driver This field is immutable.";
    pub(super) const SCIDR_CIDRS: &str = "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable.";
    pub(super) const IPADDR_PARENT: &str = "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object.";
    pub(super) const FS_PL_NAME: &str =
        "`name` is the name of the priority level configuration being referenced Required.";
    pub(super) const FS_PRECEDENCE: &str = "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default.";
    pub(super) const FS_DISTINGUISHER: &str = "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string.";
    pub(super) const PL_TYPE: &str = "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required.";
    pub(super) const PL_NCS: &str = "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level. This is the number of execution seats available at this priority level. This is used both for requests dispatched from this priority level as well as requests dispatched from other priority levels borrowing seats from this level. The server's concurrency limit (ServerCL) is divided among the Limited priority levels in proportion to their NCS values:\n\nNominalCL(i)  = ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = sum[priority level k] NCS(k)\n\nBigger numbers mean a larger nominal concurrency limit, at the expense of every other priority level.\n\nIf not specified, this field defaults to a value of 30.\n\nSetting this field to zero supports the construction of a \"jail\" for this priority level that is used to hold some request(s)";
    pub(super) const PL_QUEUES: &str = "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64.";
    pub(super) const PL_HAND: &str = "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.  When enqueuing a request at this priority level the request's flow identifier (a string pair) is hashed and the hash value is used to shuffle the list of queues and deal a hand of the size specified here.  The request is put into one of the shortest queues in that hand. `handSize` must be no larger than `queues`, and should be significantly smaller (so that a few heavy flows do not saturate most of the queues).  See the user-facing documentation for more extensive guidance on setting this field.  This field has a default value of 8.";
    pub(super) const PL_QLEN: &str = "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50.";
    pub(super) const LC_LEASE_NAME: &str = "LeaseName is the name of the lease for which this candidate is contending. This field is immutable.";
    pub(super) const RSLICE_NODE: &str = "NodeName identifies the node which provides the resources in this pool. A field selector can be used to list only ResourceSlice objects belonging to a certain node.\n\nThis field can be used to limit access from nodes to ResourceSlices with the same node name. It also indicates to autoscalers that adding new nodes of the same type as some old node might also make new resources available.\n\nExactly one of NodeName, NodeSelector, AllNodes, and PerDeviceNodeSelection must be set. This field is immutable.";
    pub(super) const RSLICE_DRIVER: &str = "Driver identifies the DRA driver providing the capacity information. A field selector can be used to list only ResourceSlice objects with a certain driver name.\n\nMust be a DNS subdomain and should end with a DNS domain owned by the vendor of the driver. This field is immutable.";
    pub(super) const RPOOL_NAME: &str = "Name is used to identify the pool. For node-local devices, this is often the node name, but this is not required.\n\nIt must not be longer than 253 characters and must consist of one or more DNS sub-domains separated by slashes. This field is immutable.";
    pub(super) const SV_COMMON: &str = "If all API server instances agree on the same encoding storage version, then this field is set to that version. Otherwise this field is left empty. API servers should finish updating its storageVersionStatus entry before serving write operations, so that this field will be in sync with the reality.";
    pub(super) const SV_VERSIONS: &str = "The reported versions per API server instance.";
    pub(super) const CTB_A1_SIGNER: &str = "signerName indicates the associated signer, if any.\n\nIn order to create or update a ClusterTrustBundle that sets signerName, you must have the following cluster-scoped permission: group=certificates.k8s.io resource=signers resourceName=<the signer name> verb=attest.\n\nIf signerName is not empty, then the ClusterTrustBundle object must be named with the signer name as a prefix (translating slashes to colons). For example, for the signer name `example.com/foo`, valid ClusterTrustBundle object names include `example.com:foo:abc` and `example.com:foo:v1`.\n\nIf signerName is empty, then the ClusterTrustBundle object's name must not have such a prefix.\n\nList/watch requests for ClusterTrustBundles can filter on this field using a `spec.signerName=NAME` field selector.";

    // extensions/v1beta1
    pub(super) const EXT_RS_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
    pub(super) const EXT_RS_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const EXT_RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
    pub(super) const EXT_RS_STATUS_READY: &str =
        "The number of ready replicas for this replica set.";
    pub(super) const EXT_DS_STATUS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
    pub(super) const EXT_DS_STATUS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
    pub(super) const EXT_DS_STATUS_READY: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.";
    pub(super) const EXT_DS_STATUS_UPDATED: &str =
        "The total number of nodes that are running updated daemon pod";
    pub(super) const EXT_DS_STATUS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
    pub(super) const EXT_DS_SPEC_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const EXT_DEPLOY_STATUS_UPDATED: &str = "Total number of non-terminated pods targeted by this deployment that have the desired template spec.";
    pub(super) const EXT_DEPLOY_STATUS_AVAILABLE: &str = "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.";
    pub(super) const EXT_DEPLOY_SPEC_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.";
    pub(super) const EXT_NETPOL_POD_SELECTOR: &str = "Selects the pods to which this NetworkPolicy object applies.  The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods.  In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.";

    // batch/v1beta1
    pub(super) const CJ_B1_SCHEDULE: &str =
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
    pub(super) const CJ_B1_TIME_ZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
    pub(super) const CJ_B1_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
    pub(super) const CJ_B1_ACTIVE: &str = "A list of pointers to currently running jobs.";
    pub(super) const CJ_B1_LAST_SCHEDULE: &str =
        "Information when was the last time the job was successfully scheduled.";

    // rbac.authorization.k8s.io/v1beta1
    pub(super) const RBAC_B1_RB_ROLEREF: &str = "roleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.";
    pub(super) const RBAC_B1_CRB_ROLEREF: &str = "roleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.";

    // autoscaling/v2beta1 (the other HPA fields read the same as autoscaling/v2)
    pub(super) const HPA_B1_METRICS: &str = "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond.";

    // certificates.k8s.io/v1beta1 (expirationSeconds reads the same as v1)
    pub(super) const CSR_B1_SIGNER: &str = "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution of trust for signers happens out of band. You can select on this field using `spec.signerName`.";
    pub(super) const CSR_B1_REQUEST: &str = "Base64-encoded PKCS#10 CSR data";
    pub(super) const CSR_B1_CONDITIONS: &str =
        "Conditions applied to the request, such as approval or denial.";

    // discovery.k8s.io/v1beta1
    pub(super) const ES_B1_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.";
    pub(super) const ES_B1_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.";
    pub(super) const ES_B1_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc)
    }

    /// The RFC 3339 time `secs` seconds before `now()`.
    fn ago(secs: i64) -> String {
        (now() - chrono::TimeDelta::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn cells_of(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
        row_cells(group, resource, obj, now())
    }

    /// The cells kubectl shows without `-o wide`.
    fn narrow(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
        let columns = column_definitions(group, resource);
        cells_of(group, resource, obj)
            .into_iter()
            .zip(columns)
            .filter(|(_, c)| c["priority"] == 0)
            .map(|(cell, _)| cell)
            .collect()
    }

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn human_duration_boundaries() {
        let cases: &[(i64, &str)] = &[
            (-2 * SEC, "<invalid>"),
            (-SEC - 1, "0s"),
            (-SEC, "0s"),
            (-1, "0s"),
            (0, "0s"),
            (5 * SEC, "5s"),
            (119 * SEC + SEC / 2, "119s"),
            (120 * SEC, "2m"),
            (200 * SEC, "3m20s"),
            (599 * SEC, "9m59s"),
            (600 * SEC, "10m"),
            (601 * SEC, "10m"),
            (179 * 60 * SEC + 59 * SEC, "179m"),
            (180 * 60 * SEC, "3h"),
            (200 * 60 * SEC, "3h20m"),
            ((8 * 60 - 1) * 60 * SEC, "7h59m"),
            (8 * 3600 * SEC, "8h"),
            (47 * 3600 * SEC, "47h"),
            (48 * 3600 * SEC, "2d"),
            (51 * 3600 * SEC, "2d3h"),
            ((24 * 8 - 1) * 3600 * SEC, "7d23h"),
            (24 * 8 * 3600 * SEC, "8d"),
            ((24 * 365 * 2 - 1) * 3600 * SEC, "729d"),
            (24 * 365 * 2 * 3600 * SEC, "2y"),
            ((365 * 2 + 45) * 24 * 3600 * SEC, "2y45d"),
            ((365 * 8 - 1) * 24 * 3600 * SEC, "7y364d"),
            (365 * 8 * 24 * 3600 * SEC, "8y"),
            (365 * 20 * 24 * 3600 * SEC, "20y"),
            (i64::MAX, "292y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(human_duration(*nanos), *want, "{nanos}ns");
        }
    }

    #[test]
    fn ages_and_unknown_timestamps() {
        let obj = |ts: Value| json!({"metadata": {"name": "x", "creationTimestamp": ts}});
        assert_eq!(cells_of("", "namespaces", &obj(json!(ago(5))))[2], "5s");
        assert_eq!(
            cells_of("", "namespaces", &obj(json!(ago(200))))[2],
            "3m20s"
        );
        assert_eq!(
            cells_of("", "namespaces", &obj(Value::Null))[2],
            "<unknown>"
        );
        assert_eq!(
            cells_of("", "namespaces", &obj(json!("0001-01-01T00:00:00Z")))[2],
            "<unknown>"
        );
        // A creation time a little in the future (clock skew) is "0s".
        assert_eq!(
            cells_of("", "namespaces", &obj(json!("2024-05-01T12:00:01Z")))[2],
            "0s"
        );
    }

    fn pod(status: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "envoy"}]},
            "status": status,
        })
    }

    fn running(name: &str, restarts: i64) -> Value {
        json!({"name": name, "ready": true, "restartCount": restarts, "state": {"running": {"startedAt": ago(600)}}})
    }

    #[test]
    fn pod_running_with_restarts() {
        let mut app = running("app", 3);
        app["lastState"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}});
        let mut p = pod(json!({
            "phase": "Running",
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [app, running("side", 0)],
        }));
        p["spec"]["nodeName"] = json!("node-a");
        assert_eq!(
            cells_of("", "pods", &p),
            vec![
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("3 (5m ago)"),
                json!("60m"),
                json!("10.244.0.5"),
                json!("node-a"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
        assert_eq!(row_conditions(Printer::Pod, &p), None);
    }

    #[test]
    fn pod_restarts_without_last_state_have_no_suffix() {
        let p = pod(json!({
            "phase": "Running",
            "containerStatuses": [running("app", 2), running("side", 0)],
        }));
        assert_eq!(cells_of("", "pods", &p)[3], "2");
    }

    #[test]
    fn pod_pending_states() {
        let p = pod(json!({
            "phase": "Pending",
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "side", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
        }));
        assert_eq!(
            narrow("", "pods", &p),
            vec![
                json!("web-1"),
                json!("0/2"),
                json!("ContainerCreating"),
                json!("0"),
                json!("60m")
            ]
        );
        // Not yet scheduled: no statuses at all, and no phase stored.
        let mut bare = pod(json!({}));
        bare["status"] = Value::Null;
        assert_eq!(
            cells_of("", "pods", &bare),
            vec![
                json!("web-1"),
                json!("0/2"),
                json!("Pending"),
                json!("0"),
                json!("60m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
        let gated = pod(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
        }));
        assert_eq!(cells_of("", "pods", &gated)[2], "SchedulingGated");
    }

    #[test]
    fn pod_crash_loop_and_exit_codes() {
        let crash = pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 7,
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(45)}},
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                running("side", 0),
            ],
        }));
        assert_eq!(
            narrow("", "pods", &crash),
            vec![
                json!("web-1"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("7 (45s ago)"),
                json!("60m")
            ]
        );
        let exit = pod(json!({
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}},
                {"name": "side", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}},
            ],
        }));
        // Statuses are walked last to first, so the first container's state wins.
        assert_eq!(cells_of("", "pods", &exit)[2], "ExitCode:2");
        let signal = pod(json!({
            "phase": "Running",
            "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
        }));
        assert_eq!(cells_of("", "pods", &signal)[2], "Signal:9");
    }

    #[test]
    fn pod_init_containers() {
        let mut p = pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "init-b", "restartCount": 0, "state": {"running": {}}},
                {"name": "init-c", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
            ],
            "containerStatuses": [
                {"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
            ],
        }));
        p["spec"]["initContainers"] =
            json!([{"name": "init-a"}, {"name": "init-b"}, {"name": "init-c"}]);
        assert_eq!(cells_of("", "pods", &p)[2], "Init:1/3");

        p["status"]["initContainerStatuses"][1] = json!({"name": "init-b", "restartCount": 4,
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}},
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        let cells = cells_of("", "pods", &p);
        assert_eq!(cells[2], "Init:CrashLoopBackOff");
        assert_eq!(cells[3], "4 (30s ago)");

        p["status"]["initContainerStatuses"][1] = json!({"name": "init-b", "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "reason": "Error"}}});
        assert_eq!(cells_of("", "pods", &p)[2], "Init:Error");
        p["status"]["initContainerStatuses"][1] = json!({"name": "init-b", "restartCount": 0,
            "state": {"terminated": {"exitCode": 3}}});
        assert_eq!(cells_of("", "pods", &p)[2], "Init:ExitCode:3");
        p["status"]["initContainerStatuses"][1] = json!({"name": "init-b", "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "signal": 15}}});
        assert_eq!(cells_of("", "pods", &p)[2], "Init:Signal:15");
    }

    #[test]
    fn pod_sidecar_counts_as_a_container() {
        let mut p = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                {"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}},
                 "state": {"running": {}}},
            ],
            "containerStatuses": [running("app", 0), running("side", 0)],
        }));
        p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        assert_eq!(
            narrow("", "pods", &p),
            vec![
                json!("web-1"),
                json!("3/3"),
                json!("Running"),
                json!("1 (2m ago)"),
                json!("60m")
            ]
        );
    }

    #[test]
    fn pod_completed_terminating_and_lost() {
        let done = json!({"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let p =
            pod(json!({"phase": "Succeeded", "containerStatuses": [done.clone(), done.clone()]}));
        assert_eq!(
            narrow("", "pods", &p)[1..3],
            [json!("0/2"), json!("Completed")]
        );
        assert_eq!(
            row_conditions(Printer::Pod, &p),
            Some(
                json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                         "message": "The pod has completed successfully."}])
            )
        );
        let failed = pod(json!({"phase": "Failed", "containerStatuses": []}));
        assert_eq!(
            row_conditions(Printer::Pod, &failed),
            Some(
                json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}])
            )
        );

        // One container completed while the other still runs.
        let mixed = |ready: &str| {
            pod(json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [running("app", 0), done.clone()]}))
        };
        assert_eq!(cells_of("", "pods", &mixed("False"))[2], "NotReady");
        assert_eq!(cells_of("", "pods", &mixed("True"))[2], "Running");

        let mut deleting = pod(
            json!({"phase": "Running", "containerStatuses": [running("app", 0), running("side", 0)]}),
        );
        deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells_of("", "pods", &deleting)[2], "Terminating");
        deleting["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells_of("", "pods", &deleting)[2], "Unknown");
        // A finished pod being deleted keeps its status.
        let mut finished = p.clone();
        finished["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells_of("", "pods", &finished)[2], "Completed");
        // Evicted: the pod-level reason.
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(cells_of("", "pods", &evicted)[2], "Evicted");
    }

    #[test]
    fn pod_wide_columns() {
        let mut p = pod(json!({
            "phase": "Running",
            "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
            "nominatedNodeName": "node-b",
            "conditions": [{"type": "example.com/gate-a", "status": "True"}, {"type": "example.com/gate-b", "status": "False"}],
        }));
        p["spec"]["readinessGates"] = json!([{"conditionType": "example.com/gate-a"}, {"conditionType": "example.com/gate-b"}]);
        assert_eq!(
            cells_of("", "pods", &p)[5..],
            [
                json!("fd00::5"),
                json!("<none>"),
                json!("node-b"),
                json!("1/2")
            ]
        );
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "edge"]}]},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}},
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        })
    }

    #[test]
    fn deployment_cells() {
        assert_eq!(
            cells_of("apps", "deployments", &deployment()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d3h"),
                json!("nginx,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web,tier in (edge,fe)"),
            ]
        );
        // replicas defaults to 1, an empty status prints zeros, no selector prints "".
        let bare =
            json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": []}}}});
        assert_eq!(
            cells_of("apps", "deployments", &bare),
            vec![
                json!("d"),
                json!("0/1"),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("")
            ]
        );
        let mut bad = deployment();
        bad["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]});
        assert_eq!(cells_of("apps", "deployments", &bad)[7], "<invalid>");
    }

    #[test]
    fn replica_set_stateful_set_daemon_set() {
        let rs = json!({"metadata": {"name": "web-5d4f", "creationTimestamp": ago(90)},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            cells_of("apps", "replicasets", &rs),
            vec![
                json!("web-5d4f"),
                json!(2),
                json!(2),
                json!(1),
                json!("90s"),
                json!("c"),
                json!("i"),
                json!("app=web,pod-template-hash=5d4f")
            ]
        );
        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres"}]}}},
            "status": {"readyReplicas": 3}});
        assert_eq!(
            narrow("apps", "statefulsets", &sts),
            vec![json!("db"), json!("3/3"), json!("<unknown>")]
        );
        let ds = json!({"metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            cells_of("apps", "daemonsets", &ds),
            vec![
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("<unknown>"),
                json!("a"),
                json!("agent:1"),
                json!("app=agent")
            ]
        );
        let rc = json!({"metadata": {"name": "old"}, "spec": {"selector": {"app": "old"}}, "status": {"replicas": 1}});
        assert_eq!(
            cells_of("", "replicationcontrollers", &rc),
            vec![
                json!("old"),
                json!(1),
                json!(1),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("app=old")
            ]
        );
    }

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "svc", "creationTimestamp": ago(300)}, "spec": spec})
    }

    #[test]
    fn service_types() {
        let cluster_ip = service(json!({
            "type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}, {"port": 9153}],
            "selector": {"k8s-app": "kube-dns"},
        }));
        assert_eq!(
            cells_of("", "services", &cluster_ip),
            vec![
                json!("svc"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("53/UDP,53/TCP,9153/TCP"),
                json!("5m"),
                json!("k8s-app=kube-dns")
            ]
        );
        let node_port = service(json!({
            "type": "NodePort", "clusterIP": "10.96.1.1", "externalIPs": ["192.0.2.10"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 443, "protocol": "TCP", "nodePort": 30001}],
        }));
        assert_eq!(
            narrow("", "services", &node_port),
            vec![
                json!("svc"),
                json!("NodePort"),
                json!("10.96.1.1"),
                json!("192.0.2.10"),
                json!("80:30080/TCP,443:30001/TCP"),
                json!("5m")
            ]
        );
        let pending = service(
            json!({"type": "LoadBalancer", "clusterIP": "10.96.2.2", "ports": [{"port": 80, "nodePort": 31000}]}),
        );
        assert_eq!(narrow("", "services", &pending)[3], "<pending>");
        let mut lb = pending.clone();
        lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"}]}});
        assert_eq!(narrow("", "services", &lb)[3], "203.0.113.9,lb.example.com");
        lb["spec"]["externalIPs"] = json!(["198.51.100.1"]);
        assert_eq!(
            narrow("", "services", &lb)[3],
            "203.0.113.9,lb.example.com,198.51.100.1"
        );
        // The server renders the wide form: long load-balancer addresses are not clipped.
        let mut long = pending.clone();
        long["status"] = json!({"loadBalancer": {"ingress": [{"hostname": "a-very-long-name.elb.example.com"}]}});
        assert_eq!(
            narrow("", "services", &long)[3],
            "a-very-long-name.elb.example.com"
        );

        let external = service(json!({"type": "ExternalName", "externalName": "db.example.com"}));
        assert_eq!(
            cells_of("", "services", &external),
            vec![
                json!("svc"),
                json!("ExternalName"),
                json!("<none>"),
                json!("db.example.com"),
                json!("<none>"),
                json!("5m"),
                json!("<none>")
            ]
        );
        // Headless; type and protocol left to defaulting.
        let headless = service(json!({"clusterIP": "None", "ports": [{"port": 5432}]}));
        assert_eq!(
            narrow("", "services", &headless),
            vec![
                json!("svc"),
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("5432/TCP"),
                json!("5m")
            ]
        );
    }

    #[test]
    fn endpoints_and_slices() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
        ]});
        assert_eq!(
            cells_of("", "endpoints", &ep)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more..."
        );
        let small = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]},
            {"addresses": [{"ip": "10.0.0.9"}]},
        ]});
        assert_eq!(
            cells_of("", "endpoints", &small)[1],
            "[fd00::1]:80,10.0.0.9"
        );
        assert_eq!(
            cells_of("", "endpoints", &json!({"metadata": {"name": "x"}}))[1],
            "<none>"
        );

        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        assert_eq!(
            narrow("discovery.k8s.io", "endpointslices", &slice),
            vec![
                json!("web-abc"),
                json!("IPv4"),
                json!("80,named,*"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
                json!("<unknown>")
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(
            narrow("discovery.k8s.io", "endpointslices", &empty)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }

    fn node(conditions: Value) -> Value {
        json!({
            "metadata": {"name": "node-a", "creationTimestamp": ago(30 * 86400),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": "node-a"}},
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"},
            },
        })
    }

    #[test]
    fn node_cells() {
        let ready = node(
            json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]),
        );
        assert_eq!(
            cells_of("", "nodes", &ready),
            vec![
                json!("node-a"),
                json!("Ready"),
                json!("control-plane,worker"),
                json!("30d"),
                json!("v1.33.1"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.7.13")
            ]
        );
        let mut cordoned = ready.clone();
        cordoned["spec"] = json!({"unschedulable": true});
        assert_eq!(
            cells_of("", "nodes", &cordoned)[1],
            "Ready,SchedulingDisabled"
        );
        let not_ready = node(json!([{"type": "Ready", "status": "Unknown"}]));
        assert_eq!(cells_of("", "nodes", &not_ready)[1], "NotReady");
        let mut unknown = node(json!([]));
        unknown["metadata"]["labels"] =
            json!({"kubernetes.io/role": "infra", "node-role.kubernetes.io/": ""});
        unknown["status"]["nodeInfo"] = json!({});
        let cells = cells_of("", "nodes", &unknown);
        assert_eq!(cells[1..3], [json!("Unknown"), json!("infra")]);
        assert_eq!(
            cells[7..],
            [json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]
        );
        let mut no_roles = ready.clone();
        no_roles["metadata"]["labels"] = json!({});
        assert_eq!(cells_of("", "nodes", &no_roles)[2], "<none>");
    }

    fn job(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "pi", "creationTimestamp": ago(3600)}, "spec": spec, "status": status})
    }

    #[test]
    fn job_cells() {
        let template = json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}});
        let complete = job(
            json!({"completions": 1, "parallelism": 1, "template": template,
                   "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}}),
            json!({"succeeded": 1, "startTime": ago(3590), "completionTime": ago(3590 - 154),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            cells_of("batch", "jobs", &complete),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("2m34s"),
                json!("60m"),
                json!("pi"),
                json!("perl:5.34"),
                json!("batch.kubernetes.io/controller-uid=abc")
            ]
        );
        let running = job(
            json!({"parallelism": 3}),
            json!({"succeeded": 1, "startTime": ago(30)}),
        );
        assert_eq!(
            narrow("batch", "jobs", &running)[1..4],
            [json!("Running"), json!("1/1 of 3"), json!("30s")]
        );
        let not_started = job(json!({}), json!({}));
        assert_eq!(
            narrow("batch", "jobs", &not_started)[1..4],
            [json!("Running"), json!("0/1"), json!("")]
        );
        let failed = job(
            json!({"completions": 5}),
            json!({"failed": 6, "startTime": ago(100), "conditions": [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}),
        );
        assert_eq!(
            narrow("batch", "jobs", &failed)[1..3],
            [json!("Failed"), json!("0/5")]
        );
        let suspended = job(
            json!({"completions": 2, "suspend": true}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        assert_eq!(narrow("batch", "jobs", &suspended)[1], "Suspended");
        let target = job(
            json!({}),
            json!({"conditions": [{"type": "FailureTarget", "status": "True"}]}),
        );
        assert_eq!(narrow("batch", "jobs", &target)[1], "FailureTarget");
        let mut terminating = job(
            json!({}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(narrow("batch", "jobs", &terminating)[1], "Terminating");
    }

    #[test]
    fn cronjob_cells() {
        let cj = json!({"metadata": {"name": "backup", "creationTimestamp": ago(86400)},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": ago(120)}});
        assert_eq!(
            cells_of("batch", "cronjobs", &cj),
            vec![
                json!("backup"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("2m"),
                json!("24h"),
                json!("b"),
                json!("busybox"),
                json!("<none>")
            ]
        );
        let mut suspended = cj.clone();
        suspended["spec"]["suspend"] = json!(true);
        suspended["spec"]["timeZone"] = json!("Etc/UTC");
        suspended["status"] = json!({});
        assert_eq!(
            narrow("batch", "cronjobs", &suspended)[2..6],
            [json!("Etc/UTC"), json!("True"), json!(0), json!("<none>")]
        );
    }

    #[test]
    fn secret_configmap_serviceaccount_namespace() {
        let secret = json!({"metadata": {"name": "tls", "creationTimestamp": ago(10)}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells_of("", "secrets", &secret),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("10s")
            ]
        );
        // stringData merges into data; the type defaults to Opaque.
        let opaque = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"a": "x", "b": "y"}});
        assert_eq!(
            cells_of("", "secrets", &opaque)[1..3],
            [json!("Opaque"), json!(2)]
        );
        let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            cells_of("", "configmaps", &cm),
            vec![json!("cfg"), json!(3), json!("<unknown>")]
        );
        assert_eq!(
            cells_of("", "configmaps", &json!({"metadata": {"name": "e"}}))[1],
            0
        );
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
        assert_eq!(cells_of("", "serviceaccounts", &sa)[1], 1);
        let ns = json!({"metadata": {"name": "dev"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells_of("", "namespaces", &ns)[1], "Terminating");
        assert_eq!(
            cells_of("", "namespaces", &json!({"metadata": {"name": "dev"}}))[1],
            "Active"
        );
    }

    #[test]
    fn event_cells() {
        let ev = json!({
            "metadata": {"name": "web-1.17c3", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning",
            "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": ago(3600), "lastTimestamp": ago(30), "count": 12,
        });
        assert_eq!(
            cells_of("", "events", &ev),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-a"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(12),
                json!("web-1.17c3")
            ]
        );
        assert_eq!(
            narrow("", "events", &ev),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("Back-off restarting failed container")
            ]
        );
        // New-style event: eventTime, series, reportingComponent, no count.
        let series = json!({
            "metadata": {"name": "e2"}, "involvedObject": {"kind": "Node"},
            "reason": "Starting", "type": "Normal", "message": "m",
            "eventTime": "2024-05-01T11:00:00.123456Z", "reportingComponent": "kube-proxy", "reportingInstance": "node-a",
            "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:00.000000Z"},
        });
        let cells = cells_of("", "events", &series);
        assert_eq!(cells[0], "60s");
        assert_eq!(cells[3], "node");
        assert_eq!(cells[5], "kube-proxy, node-a");
        assert_eq!(cells[7], "59m");
        assert_eq!(cells[8], 4);
        let singleton =
            json!({"metadata": {"name": "e3"}, "eventTime": ago(5), "reportingComponent": "sched"});
        let cells = cells_of("", "events", &singleton);
        assert_eq!(cells[0], "5s");
        assert_eq!(cells[5], "sched");
        assert_eq!(cells[8], 1);
        // events.k8s.io/v1 names the same fields differently.
        let v1 = json!({"metadata": {"name": "e4"}, "regarding": {"kind": "Deployment", "name": "web"},
            "note": "Scaled up", "reason": "ScalingReplicaSet", "type": "Normal",
            "reportingController": "deployment-controller", "deprecatedCount": 2,
            "deprecatedFirstTimestamp": ago(600), "deprecatedLastTimestamp": ago(60)});
        assert_eq!(
            cells_of("events.k8s.io", "events", &v1),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("ScalingReplicaSet"),
                json!("deployment/web"),
                json!(""),
                json!("deployment-controller"),
                json!("Scaled up"),
                json!("10m"),
                json!(2),
                json!("e4")
            ]
        );
    }

    #[test]
    fn storage_class_cells() {
        let sc = json!({"metadata": {"name": "standard", "creationTimestamp": ago(86400 * 3),
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            cells_of("storage.k8s.io", "storageclasses", &sc),
            vec![
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("3d")
            ]
        );
        let beta = json!({"metadata": {"name": "fast", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}},
            "provisioner": "csi.example.com", "reclaimPolicy": "Retain", "allowVolumeExpansion": true});
        assert_eq!(
            narrow("storage.k8s.io", "storageclasses", &beta),
            vec![
                json!("fast (default)"),
                json!("csi.example.com"),
                json!("Retain"),
                json!("Immediate"),
                json!(true),
                json!("<unknown>")
            ]
        );
        let plain = json!({"metadata": {"name": "slow", "annotations": {"storageclass.kubernetes.io/is-default-class": "false"}}, "provisioner": "p"});
        assert_eq!(
            narrow("storage.k8s.io", "storageclasses", &plain)[0..3],
            [json!("slow"), json!("p"), json!("Delete")]
        );
    }

    #[test]
    fn persistent_volumes_and_claims() {
        let pv = json!({"metadata": {"name": "pv-1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                     "claimRef": {"namespace": "default", "name": "data"}},
            "status": {"phase": "Bound"}});
        assert_eq!(
            cells_of("", "persistentvolumes", &pv),
            vec![
                json!("pv-1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Delete"),
                json!("Bound"),
                json!("default/data"),
                json!("standard"),
                json!("<unset>"),
                json!(""),
                json!("<unknown>"),
                json!("Filesystem")
            ]
        );
        let bare = json!({"metadata": {"name": "pv-2", "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}}, "spec": {"volumeMode": "Block"}});
        assert_eq!(
            cells_of("", "persistentvolumes", &bare),
            vec![
                json!("pv-2"),
                json!("0"),
                json!(""),
                json!("Retain"),
                json!("Pending"),
                json!(""),
                json!("legacy"),
                json!("<unset>"),
                json!(""),
                json!("<unknown>"),
                json!("Block")
            ]
        );
        let bound = json!({"metadata": {"name": "data"},
            "spec": {"volumeName": "pv-1", "storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(
            cells_of("", "persistentvolumeclaims", &bound),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("1Gi"),
                json!("RWO"),
                json!("standard"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("Filesystem")
            ]
        );
        let mut pending =
            json!({"metadata": {"name": "claim"}, "spec": {"volumeAttributesClassName": "gold"}});
        assert_eq!(
            narrow("", "persistentvolumeclaims", &pending),
            vec![
                json!("claim"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("gold"),
                json!("<unknown>")
            ]
        );
        pending["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(
            narrow("", "persistentvolumeclaims", &pending)[1],
            "Terminating"
        );
    }

    #[test]
    fn hpa_cells() {
        let v2 = json!({"metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "512Mi"}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
            ]},
        "status": {"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 31, "averageValue": "155m"}}},
        ]}});
        assert_eq!(
            cells_of("autoscaling", "horizontalpodautoscalers", &v2),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 31%/50%, memory: <unknown>/512Mi + 1 more..."),
                json!("2"),
                json!(10),
                json!(3),
                json!("<unknown>")
            ]
        );
        let v1 = json!({"metadata": {"name": "api"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
            "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 12}});
        assert_eq!(
            narrow("autoscaling", "horizontalpodautoscalers", &v1)[2..6],
            [json!("cpu: 12%/70%"), json!("1"), json!(5), json!(1)]
        );
        let defaulted = json!({"metadata": {"name": "d"}, "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}, "maxReplicas": 3}});
        assert_eq!(
            narrow("autoscaling", "horizontalpodautoscalers", &defaulted)[2],
            "cpu: <unknown>/80%"
        );
        let external = json!({"metadata": {"name": "q"}, "spec": {"maxReplicas": 3, "metrics": [
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}},
            {"type": "Object", "object": {"target": {"type": "AverageValue", "averageValue": "2500m"}}},
        ]}, "status": {"currentMetrics": [{"type": "External", "external": {"current": {"value": "12"}}}]}});
        assert_eq!(
            narrow("autoscaling", "horizontalpodautoscalers", &external)[2],
            "12/30, <unknown>/2500m (avg)"
        );
    }

    #[test]
    fn rbac_and_default_tables() {
        let rb = json!({"metadata": {"name": "admins"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"}, {"kind": "User", "name": "bob"},
                         {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}]});
        assert_eq!(
            cells_of("rbac.authorization.k8s.io", "rolebindings", &rb),
            vec![
                json!("admins"),
                json!("ClusterRole/admin"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("ops"),
                json!("ci/deployer")
            ]
        );
        assert!(!has_printer("rbac.authorization.k8s.io", "roles"));
        assert!(!has_printer("rbac.authorization.k8s.io", "clusterroles"));
        assert!(!has_printer("", "limitranges"));
        assert!(!has_printer("storage.k8s.io", "csistoragecapacities"));
        assert!(!has_printer("example.com", "widgets"));
        assert!(has_printer("", "pods"));
        let role =
            json!({"metadata": {"name": "reader", "creationTimestamp": "2024-04-30T10:11:12Z"}});
        assert_eq!(
            cells_of("rbac.authorization.k8s.io", "roles", &role),
            vec![json!("reader"), json!("2024-04-30T10:11:12Z")]
        );
        let offset =
            json!({"metadata": {"name": "r", "creationTimestamp": "2024-04-30T12:11:12.5+02:00"}});
        assert_eq!(
            cells_of("", "limitranges", &offset)[1],
            "2024-04-30T10:11:12Z"
        );
        assert_eq!(
            cells_of("", "limitranges", &json!({"metadata": {"name": "r"}}))[1],
            "0001-01-01T00:00:00Z"
        );
        let columns = column_definitions("rbac.authorization.k8s.io", "clusterroles");
        assert_eq!(columns[0]["name"], "Name");
        assert_eq!(columns[0]["format"], "name");
        assert_eq!(columns[1]["name"], "Created At");
        assert_eq!(columns[1]["type"], "date");
        assert_eq!(columns[1]["format"], "");
        assert_eq!(columns[1]["priority"], 0);
        assert!(columns[1]["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("CreationTimestamp is a timestamp")));
    }

    #[test]
    fn misc_kinds() {
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells_of("policy", "poddisruptionbudgets", &pdb)[1..4],
            [json!("2"), json!("N/A"), json!(1)]
        );
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": "25%"}});
        assert_eq!(
            cells_of("policy", "poddisruptionbudgets", &pdb)[1..4],
            [json!("N/A"), json!("25%"), json!(0)]
        );

        let ing = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"}, {"host": "d.example.com"}],
            "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        assert_eq!(
            cells_of("networking.k8s.io", "ingresses", &ing)[1..5],
            [
                json!("nginx"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("192.0.2.1"),
                json!("80, 443")
            ]
        );
        let ing = json!({"metadata": {"name": "any"}, "spec": {"rules": [{}]}});
        assert_eq!(
            cells_of("networking.k8s.io", "ingresses", &ing)[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
        let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(
            cells_of("networking.k8s.io", "ingressclasses", &ic)[1..3],
            [
                json!("k8s.io/ingress-nginx"),
                json!("IngressParameters.k8s.example.com/external-lb")
            ]
        );
        let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        assert_eq!(
            cells_of("networking.k8s.io", "networkpolicies", &np)[1],
            "<none>"
        );
        let np = json!({"metadata": {"name": "db"}, "spec": {"podSelector": {"matchExpressions": [{"key": "role", "operator": "DoesNotExist"}, {"key": "app", "operator": "Exists"}]}}});
        assert_eq!(
            cells_of("networking.k8s.io", "networkpolicies", &np)[1],
            "app,!role"
        );
        let np = json!({"metadata": {"name": "bad"}, "spec": {"podSelector": {"matchLabels": {"bad key": "x"}}}});
        assert_eq!(
            cells_of("networking.k8s.io", "networkpolicies", &np)[1],
            "<error>"
        );

        let lease = json!({"metadata": {"name": "node-a"}, "spec": {"holderIdentity": "node-a"}});
        assert_eq!(
            cells_of("coordination.k8s.io", "leases", &lease)[1],
            "node-a"
        );
        assert_eq!(
            cells_of(
                "coordination.k8s.io",
                "leases",
                &json!({"metadata": {"name": "l"}})
            )[1],
            ""
        );

        let pc = json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000, "globalDefault": false});
        assert_eq!(
            cells_of("scheduling.k8s.io", "priorityclasses", &pc),
            vec![
                json!("system-node-critical"),
                json!(2_000_001_000),
                json!(false),
                json!("<unknown>"),
                json!("PreemptLowerPriority")
            ]
        );
        let rc = json!({"metadata": {"name": "gvisor"}, "handler": "runsc"});
        assert_eq!(cells_of("node.k8s.io", "runtimeclasses", &rc)[1], "runsc");

        let csr = json!({"metadata": {"name": "csr-x"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "username": "system:node:node-a", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
        assert_eq!(
            cells_of("certificates.k8s.io", "certificatesigningrequests", &csr),
            vec![
                json!("csr-x"),
                json!("<unknown>"),
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:node:node-a"),
                json!("24h"),
                json!("Approved,Issued")
            ]
        );
        let csr = json!({"metadata": {"name": "csr-y"}, "spec": {}, "status": {"conditions": [{"type": "Denied"}, {"type": "Failed"}]}});
        assert_eq!(
            cells_of("certificates.k8s.io", "certificatesigningrequests", &csr)[2..],
            [
                json!("<none>"),
                json!(""),
                json!("<none>"),
                json!("Denied,Failed")
            ]
        );

        let cr = json!({"metadata": {"name": "web-7c9", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 2});
        assert_eq!(
            cells_of("apps", "controllerrevisions", &cr)[1..3],
            [json!("statefulset.apps/web"), json!(2)]
        );
        assert_eq!(
            cells_of(
                "apps",
                "controllerrevisions",
                &json!({"metadata": {"name": "x"}})
            )[1],
            "<none>"
        );

        let quota = json!({"metadata": {"name": "compute"}, "status": {
            "hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "pods": "10", "limits": "3"},
            "used": {"requests.cpu": "500m", "requests.memory": "536870912", "pods": 3}}});
        assert_eq!(
            cells_of("", "resourcequotas", &quota)[1..3],
            [
                json!(
                    "limits: 0/3, pods: 3/10, requests.cpu: 500m/1, requests.memory: 536870912/1Gi"
                ),
                json!("limits.cpu: 0/2")
            ]
        );

        let va = json!({"metadata": {"name": "csi-1"}, "spec": {"attacher": "ebs.csi.aws.com", "nodeName": "node-a",
            "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": true}});
        assert_eq!(
            narrow("storage.k8s.io", "volumeattachments", &va),
            vec![
                json!("csi-1"),
                json!("ebs.csi.aws.com"),
                json!("pv-1"),
                json!("node-a"),
                json!(true),
                json!("<unknown>")
            ]
        );
        let driver = json!({"metadata": {"name": "ebs.csi.aws.com"}, "spec": {"attachRequired": false, "tokenRequests": [{"audience": "sts"}, {"audience": "vault"}]}});
        assert_eq!(
            cells_of("storage.k8s.io", "csidrivers", &driver)[1..7],
            [
                json!(false),
                json!(false),
                json!(false),
                json!("sts,vault"),
                json!(false),
                json!("Persistent")
            ]
        );
        let driver = json!({"metadata": {"name": "d"}, "spec": {"volumeLifecycleModes": ["Persistent", "Ephemeral"]}});
        assert_eq!(
            cells_of("storage.k8s.io", "csidrivers", &driver)[1..7],
            [
                json!(true),
                json!(false),
                json!(false),
                json!("<unset>"),
                json!(false),
                json!("Persistent,Ephemeral")
            ]
        );
        let csinode = json!({"metadata": {"name": "node-a"}, "spec": {"drivers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(cells_of("storage.k8s.io", "csinodes", &csinode)[1], 2);
        let hook = json!({"metadata": {"name": "h"}, "webhooks": [{"name": "a"}]});
        assert_eq!(
            cells_of(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                &hook
            )[1],
            1
        );
        assert_eq!(
            cells_of(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                &json!({"metadata": {"name": "m"}})
            )[1],
            0
        );
        let template = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}});
        assert_eq!(
            cells_of("", "podtemplates", &template),
            vec![json!("t"), json!("c"), json!("i"), json!("a=1,b=2")]
        );

        let apiservice = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(
            narrow("apiregistration.k8s.io", "apiservices", &apiservice)[1..3],
            [
                json!("kube-system/metrics-server"),
                json!("False (MissingEndpoints)")
            ]
        );
        let local = json!({"metadata": {"name": "v1."}, "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(
            narrow("apiregistration.k8s.io", "apiservices", &local)[1..3],
            [json!("Local"), json!("True")]
        );

        let binding = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "paramRef": {"selector": {"matchLabels": {"env": "prod"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}}});
        assert_eq!(
            cells_of("admissionregistration.k8s.io", "validatingadmissionpolicybindings", &binding)[2],
            "&LabelSelector{MatchLabels:map[string]string{env: prod,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},},}"
        );
        let binding = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "paramRef": {"name": "cfg"}}});
        assert_eq!(
            cells_of(
                "admissionregistration.k8s.io",
                "validatingadmissionpolicybindings",
                &binding
            )[1..3],
            [json!("p"), json!("*/cfg")]
        );
        let policy = json!({"metadata": {"name": "p"}, "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}, "validations": [{}, {}]}});
        assert_eq!(
            cells_of(
                "admissionregistration.k8s.io",
                "validatingadmissionpolicies",
                &policy
            )[1..3],
            [json!(2), json!("v1/ConfigMap")]
        );

        let ip = json!({"metadata": {"name": "10.96.0.1"}, "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
        assert_eq!(
            cells_of("networking.k8s.io", "ipaddresses", &ip)[1],
            "services/default/kubernetes"
        );
        let claim = json!({"metadata": {"name": "gpu"}, "status": {"allocation": {}, "reservedFor": [{"name": "pod"}]}});
        assert_eq!(
            cells_of("resource.k8s.io", "resourceclaims", &claim)[1],
            "allocated,reserved"
        );
        assert_eq!(
            cells_of(
                "resource.k8s.io",
                "resourceclaims",
                &json!({"metadata": {"name": "c"}})
            )[1],
            "pending"
        );
    }

    #[test]
    fn flow_control_kinds() {
        let fs = |name: &str, precedence: Value| {
            json!({"metadata": {"name": name}, "spec": {"priorityLevelConfiguration": {"name": "workload-low"},
                "matchingPrecedence": precedence, "distinguisherMethod": {"type": "ByUser"}},
                "status": {"conditions": [{"type": "Dangling", "status": "False"}]}})
        };
        assert_eq!(
            narrow(
                "flowcontrol.apiserver.k8s.io",
                "flowschemas",
                &fs("a", json!(9000))
            ),
            vec![
                json!("a"),
                json!("workload-low"),
                json!(9000),
                json!("ByUser"),
                json!("<unknown>"),
                json!("False")
            ]
        );
        let t = table(
            "flowcontrol.apiserver.k8s.io",
            "flowschemas",
            &[
                fs("z", json!(100)),
                fs("b", Value::Null),
                fs("a", json!(1000)),
                fs("c", json!(50)),
            ],
            "1",
            None,
            IncludeObject::None,
            now(),
        );
        let order: Vec<&Value> = t["rows"]
            .as_array()
            .map(|rows| rows.iter().map(|r| &r["cells"][0]).collect())
            .unwrap_or_default();
        assert_eq!(order, [&json!("c"), &json!("z"), &json!("a"), &json!("b")]);
        let plc = json!({"metadata": {"name": "workload-low"}, "spec": {"type": "Limited",
            "limited": {"nominalConcurrencyShares": 100, "limitResponse": {"type": "Queue", "queuing": {"queues": 128}}}}});
        assert_eq!(
            narrow(
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
                &plc
            )[1..6],
            [
                json!("Limited"),
                json!(100),
                json!(128),
                json!(8),
                json!(50)
            ]
        );
        let exempt =
            json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt", "exempt": {}}});
        assert_eq!(
            narrow(
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
                &exempt
            )[1..6],
            [
                json!("Exempt"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn quantities_print_canonically() {
        let cases: &[(&str, &str)] = &[
            ("0", "0"),
            ("0Gi", "0"),
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("100m", "100m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1.5k", "1500"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("0.5Gi", "512Mi"),
            ("1.5Gi", "1536Mi"),
            ("100Mi", "100Mi"),
            ("1536", "1536"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1073741824", "1073741824"),
            ("10G", "10G"),
            ("0.1m", "100u"),
            ("0.1n", "1n"),
            ("1.0000000001", "1000000001n"),
            ("1n", "1n"),
            ("-1.5", "-1500m"),
            ("+3", "3"),
            ("12Mi", "12Mi"),
        ];
        for (input, want) in cases {
            assert_eq!(quantity(Some(&json!(input))), *want, "{input}");
        }
        assert_eq!(quantity(Some(&json!(5))), "5");
        assert_eq!(quantity(None), "0");
        assert_eq!(quantity_ptr(None), "<nil>");
        // Unparseable text is shown as written.
        assert_eq!(quantity(Some(&json!("lots"))), "lots");
        assert_eq!(quantity(Some(&json!("1K"))), "1K");
    }

    #[test]
    fn label_formatting() {
        assert_eq!(
            format_labels(Some(&json!({"a.b": "y", "a": "x"}))),
            "a.b=y,a=x"
        );
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["qa"]}],
                "matchLabels": {"app": "x", "example.com/team": "core"}})
            )),
            "app=x,env notin (qa),example.com/team=core"
        );
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]})
            )),
            "<error>"
        );
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["x"]}]})
            )),
            "<error>"
        );
        assert!(valid_label_key("app.kubernetes.io/name"));
        assert!(!valid_label_key("Example.com/name"));
        assert!(!valid_label_key("-bad"));
        assert!(!valid_label_value("ends-with-"));
        assert!(valid_label_value(""));
    }

    /// Every covered kind, with a minimal object: the printer yields one cell per column.
    #[test]
    fn every_printer_has_one_cell_per_column() {
        let kinds: &[(&str, &str)] = &[
            ("", "pods"),
            ("", "podtemplates"),
            ("", "replicationcontrollers"),
            ("", "services"),
            ("", "endpoints"),
            ("", "nodes"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("", "namespaces"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "componentstatuses"),
            ("", "configmaps"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("networking.k8s.io", "networkpolicies"),
            ("networking.k8s.io", "servicecidrs"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("certificates.k8s.io", "clustertrustbundles"),
            ("coordination.k8s.io", "leases"),
            ("coordination.k8s.io", "leasecandidates"),
            ("storage.k8s.io", "storageclasses"),
            ("storage.k8s.io", "volumeattributesclasses"),
            ("storage.k8s.io", "volumeattachments"),
            ("storage.k8s.io", "csinodes"),
            ("storage.k8s.io", "csidrivers"),
            ("storage.k8s.io", "csistoragecapacities"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("node.k8s.io", "runtimeclasses"),
            ("discovery.k8s.io", "endpointslices"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingadmissionpolicies",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingadmissionpolicybindings",
            ),
            ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
            (
                "admissionregistration.k8s.io",
                "mutatingadmissionpolicybindings",
            ),
            ("flowcontrol.apiserver.k8s.io", "flowschemas"),
            (
                "flowcontrol.apiserver.k8s.io",
                "prioritylevelconfigurations",
            ),
            ("internal.apiserver.k8s.io", "storageversions"),
            ("resource.k8s.io", "deviceclasses"),
            ("resource.k8s.io", "resourceclaims"),
            ("resource.k8s.io", "resourceclaimtemplates"),
            ("resource.k8s.io", "resourceslices"),
            ("storagemigration.k8s.io", "storageversionmigrations"),
            ("apiregistration.k8s.io", "apiservices"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ];
        let minimal = json!({"metadata": {"name": "x", "creationTimestamp": ago(1)}});
        for (group, resource) in kinds {
            let columns = column_definitions(group, resource);
            let cells = cells_of(group, resource, &minimal);
            assert_eq!(columns.len(), cells.len(), "{group}/{resource}");
            for column in &columns {
                let keys: Vec<&String> = column
                    .as_object()
                    .map(|m| m.keys().collect())
                    .unwrap_or_default();
                assert_eq!(keys.len(), 5, "{group}/{resource}: {column}");
                assert!(column["name"].is_string() && column["type"].is_string());
                assert!(column["format"].is_string() && column["description"].is_string());
                assert!(column["priority"] == 0 || column["priority"] == 1);
            }
            // Every printed kind leads with the object's name, except events (Last Seen).
            if *resource != "events" {
                assert_eq!(cells[0], "x", "{group}/{resource}");
            }
        }
        // The one upstream mismatch, reproduced: two IPAddress columns, three cells.
        assert_eq!(
            column_definitions("networking.k8s.io", "ipaddresses").len(),
            2
        );
        assert_eq!(
            cells_of("networking.k8s.io", "ipaddresses", &minimal).len(),
            3
        );
    }

    #[test]
    fn pod_column_definitions() {
        let columns = column_definitions("", "pods");
        let summary: Vec<(String, String, String, i64)> = columns
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["type"].as_str().unwrap_or_default().to_string(),
                    c["format"].as_str().unwrap_or_default().to_string(),
                    c["priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let want: Vec<(String, String, String, i64)> = [
            ("Name", "string", "name", 0),
            ("Ready", "string", "", 0),
            ("Status", "string", "", 0),
            ("Restarts", "string", "", 0),
            ("Age", "string", "", 0),
            ("IP", "string", "", 1),
            ("Node", "string", "", 1),
            ("Nominated Node", "string", "", 1),
            ("Readiness Gates", "string", "", 1),
        ]
        .iter()
        .map(|(n, t, f, p)| (n.to_string(), t.to_string(), f.to_string(), *p))
        .collect();
        assert_eq!(summary, want);
        assert_eq!(
            columns[0]["description"],
            "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
        );
        assert_eq!(
            columns[5]["description"],
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
        );
        let events = column_definitions("", "events");
        let names: Vec<&str> = events.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        let wide: Vec<i64> = events
            .iter()
            .filter_map(|c| c["priority"].as_i64())
            .collect();
        assert_eq!(wide, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn table_shape() {
        let mut p = pod(json!({"phase": "Succeeded"}));
        p["metadata"]["resourceVersion"] = json!("42");
        let t = table(
            "",
            "pods",
            std::slice::from_ref(&p),
            "100",
            Some("next-page"),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "100", "continue": "next-page"})
        );
        assert_eq!(
            t["columnDefinitions"],
            json!(column_definitions("", "pods"))
        );
        let rows = t["rows"].as_array().map(Vec::len);
        assert_eq!(rows, Some(1));
        let row = &t["rows"][0];
        assert_eq!(row["cells"], json!(cells_of("", "pods", &p)));
        assert_eq!(row["conditions"][0]["type"], "Completed");
        assert_eq!(
            row["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]})
        );

        let t = table(
            "",
            "pods",
            std::slice::from_ref(&p),
            "",
            None,
            IncludeObject::Object,
            now(),
        );
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], p);

        let t = table(
            "apps",
            "deployments",
            &[deployment()][..],
            "7",
            Some(""),
            IncludeObject::None,
            now(),
        );
        assert_eq!(t["metadata"], json!({"resourceVersion": "7"}));
        let row = t["rows"][0]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>());
        assert_eq!(row, Some(vec!["cells".to_string()]));

        let t = table(
            "",
            "configmaps",
            &[],
            "9",
            None,
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(t["rows"], json!([]));
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn include_object_param() {
        assert_eq!(IncludeObject::from_param(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::from_param("None"), Some(IncludeObject::None));
        assert_eq!(
            IncludeObject::from_param("Object"),
            Some(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::from_param("object"), None);
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }
}
