//! skiff: a Kubernetes distribution in one binary.

use clap::Parser;
use skiff::{agent, components, reset, server};

mod image;

/// The server allocates and frees many small JSON trees per request; mimalloc does that far
/// faster than glibc's malloc (whose frees and consolidation were a fifth of a create's CPU
/// and as much as the decoding in a large Table LIST). Built without its requests for
/// transparent huge pages (feature `no_thp`): they doubled the idle RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "skiff",
    version,
    about = "A Kubernetes distribution in one binary"
)]
enum Cli {
    /// Run the control plane (API server on an embedded datastore or etcd).
    Server(server::ServerArgs),
    /// Join a server with its join token and run nodes (for now simulated ones).
    Agent(agent::AgentArgs),
    /// Run the controller manager alone, against the API of a kubeconfig (for control planes
    /// whose components run in processes of their own).
    #[command(name = "controller-manager", hide = true)]
    ControllerManager(components::ControllerManagerArgs),
    /// Run the scheduler alone against an API server (HA setups, tests).
    #[command(hide = true)]
    Scheduler(components::SchedulerArgs),
    /// Manage the node's images: import tarballs, list, remove, pull.
    Image(image::ImageArgs),
    /// Remove what a stopped node left on this machine: its containers and pod sandboxes,
    /// skiff's nftables tables and routes, the cni0 bridge (images and data stay).
    Reset(reset::ResetArgs),
}

fn main() -> std::process::ExitCode {
    // `skiff container-monitor <monitor.json>` (hidden): the per-container monitor, run
    // before the logger and the async runtime so that it stays one small thread.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|a| a == "container-monitor") {
        let code = match argv.next() {
            Some(config) => skiff_runtime::container::monitor::run(config.as_ref()),
            None => 2,
        };
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // `skiff sandbox-pause` (hidden): a shareProcessNamespace pod's PID namespace holder
    // (PID 1 there), as small as the monitor and for the same reason.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == skiff_runtime::sandbox::pause::SUBCOMMAND)
    {
        let code = skiff_runtime::sandbox::pause::run();
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skiff: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli {
            Cli::Server(args) => server::run(args).await,
            Cli::Agent(args) => agent::run(args).await,
            Cli::ControllerManager(args) => components::run_controller_manager(args).await,
            Cli::Scheduler(args) => components::run_scheduler(args).await,
            Cli::Image(args) => image::run(args).await,
            Cli::Reset(args) => reset::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
