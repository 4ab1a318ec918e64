//! The default plugins, one module each, named as upstream names them
//! (`pkg/scheduler/framework/plugins/<name>`). Each is a unit struct (or one with its
//! arguments) implementing the extension-point traits of [`crate::framework`] it takes part
//! in; all are pure functions of the pod, the node and the cycle's state.
//!
//! Not here: VolumeBinding, VolumeRestrictions, VolumeZone, NodeVolumeLimits (skiff does not
//! schedule volumes), DynamicResources, SchedulingGates (gated pods are simply not queued:
//! see `queue`), and DefaultBinder / DefaultPreemption, which are `bind` in `scheduler` and
//! the `preemption` module.

mod helper;
mod image_locality;
mod inter_pod_affinity;
mod node_affinity;
mod node_name;
mod node_ports;
mod node_resources;
mod node_unschedulable;
mod pod_topology_spread;
mod taint_toleration;

#[cfg(test)]
pub(crate) mod testing;

pub use helper::default_normalize_score;
pub use image_locality::ImageLocality;
pub use inter_pod_affinity::InterPodAffinity;
pub use node_affinity::NodeAffinity;
pub use node_name::NodeName;
pub use node_ports::NodePorts;
pub use node_resources::{BalancedAllocation, NodeResourcesFit};
pub use node_unschedulable::NodeUnschedulable;
pub use pod_topology_spread::PodTopologySpread;
pub use taint_toleration::TaintToleration;

/// The plugins' names, as upstream spells them (the queue matches events against them).
pub mod names {
    pub const NODE_UNSCHEDULABLE: &str = "NodeUnschedulable";
    pub const NODE_NAME: &str = "NodeName";
    pub const TAINT_TOLERATION: &str = "TaintToleration";
    pub const NODE_AFFINITY: &str = "NodeAffinity";
    pub const NODE_PORTS: &str = "NodePorts";
    pub const NODE_RESOURCES_FIT: &str = "NodeResourcesFit";
    pub const BALANCED_ALLOCATION: &str = "NodeResourcesBalancedAllocation";
    pub const POD_TOPOLOGY_SPREAD: &str = "PodTopologySpread";
    pub const INTER_POD_AFFINITY: &str = "InterPodAffinity";
    pub const IMAGE_LOCALITY: &str = "ImageLocality";
    pub const DEFAULT_PREEMPTION: &str = "DefaultPreemption";
}
