//! `skiff reset`: takes away what a node left on the machine, for a node that is stopped and
//! will not come back as it was (k3s's `k3s-killall.sh` role): every container and pod
//! sandbox of its data dir (processes, mounts, CNI leases, cgroups), the Service proxy's
//! and the pod network's nftables tables, skiff's routes to other nodes (protocol 83) and
//! the `cni0` bridge. Images and the data dir itself stay. Run it in the node's network
//! namespace, as root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use skiff_runtime::container::monitor::MonitorCommand;
use skiff_runtime::cri::PodRuntime;
use skiff_runtime::local::{LocalConfig, LocalRuntime};
use skiff_runtime::sandbox::cni::{self, Cni, NetworkList};

/// `skiff reset`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ResetArgs {
    /// The node's data directory.
    #[arg(long, default_value = "/var/lib/skiff")]
    pub data_dir: PathBuf,
    /// The Service proxy's nftables table (see `--proxy-table`).
    #[arg(long = "proxy-table", default_value = "skiff", hide = true)]
    pub proxy_table: String,
    /// The pods' masquerade table (see `--podnet-table`).
    #[arg(long = "podnet-table", default_value = skiff_kubelet::podnet::DEFAULT_TABLE, hide = true)]
    pub podnet_table: String,
}

/// Stops and removes every container and sandbox of the node on `data_dir`; `monitor` is how
/// the runtime runs container monitors (unused for removal, needed to open it).
pub async fn remove_pods(data_dir: &Path, monitor: MonitorCommand) -> Result<(usize, usize)> {
    let mut config = LocalConfig::new(data_dir, monitor);
    if let Ok(net) = NetworkList::load_dir(&cni::default_conf_dir(data_dir)) {
        config.cni = Some(Cni::new(
            net,
            cni::DEFAULT_BIN_DIRS.iter().map(Into::into).collect(),
        ));
    }
    let rt = LocalRuntime::new(config).context("opening the node's runtime state")?;
    let containers = rt.list_containers().await?;
    for c in &containers {
        let _ = rt.stop_container(&c.id, Duration::from_secs(1)).await;
        rt.remove_container(&c.id)
            .await
            .with_context(|| format!("removing container {}", c.id))?;
        for path in skiff_kubelet::pods::qos::pod_cgroup_candidates(&c.meta.pod_uid) {
            let _ = rt.remove_pod_cgroup(&path).await;
        }
    }
    let sandboxes = rt.list_sandboxes().await?;
    for s in &sandboxes {
        rt.remove_sandbox(&s.id)
            .await
            .with_context(|| format!("removing pod sandbox {}", s.id))?;
    }
    Ok((containers.len(), sandboxes.len()))
}

pub async fn run(args: ResetArgs) -> Result<()> {
    let program = std::env::current_exe().context("finding skiff's own binary")?;
    let monitor = MonitorCommand {
        program,
        args: vec!["container-monitor".into()],
    };
    let (containers, sandboxes) = remove_pods(&args.data_dir, monitor).await?;
    println!("removed {containers} containers and {sandboxes} pod sandboxes");
    skiff_proxy::remove_table(&["nft".to_owned()], &args.proxy_table)
        .with_context(|| format!("removing nftables table ip {}", args.proxy_table))?;
    println!("removed nftables table ip {}", args.proxy_table);
    // The pod network: our routes and the masquerade table (the CIDR is not used to remove).
    let mut podnet = skiff_kubelet::podnet::Config::new("", ipnet::Ipv4Net::default());
    podnet.table = args.podnet_table.clone();
    skiff_kubelet::podnet::remove(&podnet)
        .await
        .context("removing the pod network's routes and nftables table")?;
    println!(
        "removed skiff's routes (proto 83) and nftables table ip {}",
        podnet.table
    );
    let bridge = std::process::Command::new("ip")
        .args(["link", "delete", "cni0"])
        .output();
    match bridge {
        Ok(out) if out.status.success() => println!("removed the cni0 bridge"),
        _ => println!("no cni0 bridge"),
    }
    Ok(())
}
