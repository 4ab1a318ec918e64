//! The OCI runtime driver: runc (default), crun, or any binary with runc's command line.
//!
//! Every call passes `--root <skiff's state dir>`, so skiff only ever sees and touches its
//! own containers, never another user's of the same runc. Calls are blocking (they fork a
//! short-lived process); async callers use `spawn_blocking`. Failures carry the runtime's
//! own message (runc's `--log` JSON error, else its stderr), which the kubelet turns into
//! `CreateContainerError`/`StartError`, e.g. runc's
//! `exec: "x": executable file not found in $PATH`.
//!
//! What it does not do: hold the container's stdio or wait for it (that is the monitor's
//! job, [`super::monitor`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};

/// Default OCI runtime binary.
pub const DEFAULT_RUNTIME: &str = "runc";

/// A runtime call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime binary could not be started at all.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    /// The runtime ran and refused; `message` is its own error text.
    #[error("{command} failed: {message}")]
    Failed { command: String, message: String },
    /// `state` answered something we cannot read.
    #[error("cannot parse the runtime's state of {id}: {source}")]
    BadState {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    /// The container does not exist (in this runtime root).
    #[error("container {0} does not exist")]
    NotFound(String),
}

impl RuntimeError {
    /// The runtime's own message (for container status messages).
    pub fn message(&self) -> String {
        match self {
            RuntimeError::Failed { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// `runc state` output (the OCI state plus runc's extras we use).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// `creating`, `created`, `running`, `stopped` (runc also says `paused`).
    pub status: String,
    /// 0 once stopped.
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub bundle: PathBuf,
    #[serde(default)]
    pub created: Option<String>,
}

/// Which OCI runtime, and where its state lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// `runc`, `crun`, or a path.
    pub binary: PathBuf,
    /// The runtime's `--root`: skiff's own, e.g. `<data-dir>/agent/containers/runc`.
    pub root: PathBuf,
    /// More global options, before the command (e.g. crun's `--cgroup-manager=disabled`
    /// on hosts whose cgroup layout it refuses).
    #[serde(default)]
    pub global_args: Vec<String>,
}

impl Runtime {
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Runtime {
            binary: binary.into(),
            root: root.into(),
            global_args: Vec::new(),
        }
    }

    /// A command for `args`, with `--root` (and `--log` when given) in front.
    pub fn command(&self, log: Option<&Path>, args: &[OsString]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd.args(&self.global_args);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).arg("--log-format").arg("json");
        }
        cmd.args(args);
        cmd
    }

    fn run(&self, what: &str, args: &[OsString]) -> Result<Output, RuntimeError> {
        let out = self
            .command(None, args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.display().to_string(),
                source,
            })?;
        if out.status.success() {
            Ok(out)
        } else {
            let message = error_message(None, &out.stderr);
            if is_not_found(&message) {
                return Err(RuntimeError::NotFound(
                    args.last()
                        .map(|a| a.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ));
            }
            Err(RuntimeError::Failed {
                command: format!("{} {what}", self.name()),
                message,
            })
        }
    }

    /// `runc`, `crun`: the binary's file name, for messages.
    pub fn name(&self) -> String {
        self.binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.binary.display().to_string())
    }

    /// `create --bundle B --pid-file P ID`, stdio null. The monitor runs `create` itself
    /// (with the container's stdio pipes, [`Runtime::command`]); this is for tests and tools.
    pub fn create(&self, id: &str, bundle: &Path, pid_file: &Path) -> Result<(), RuntimeError> {
        self.run(
            "create",
            &[
                "create".into(),
                "--bundle".into(),
                bundle.into(),
                "--pid-file".into(),
                pid_file.into(),
                id.into(),
            ],
        )
        .map(drop)
    }

    /// `start ID`: runs the created container's process.
    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("start", &["start".into(), id.into()]).map(drop)
    }

    /// `state ID`.
    pub fn state(&self, id: &str) -> Result<State, RuntimeError> {
        let out = self.run("state", &["state".into(), id.into()])?;
        serde_json::from_slice(&out.stdout).map_err(|source| RuntimeError::BadState {
            id: id.to_string(),
            source,
        })
    }

    /// `kill [--all] ID SIGNAL` (signal as a number: runc and crun both take it).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["kill".into()];
        if all {
            args.push("--all".into());
        }
        args.push(id.into());
        args.push(signal.to_string().into());
        self.run("kill", &args).map(drop)
    }

    /// `delete [--force] ID`. A container that does not exist is not an error (delete is
    /// idempotent, as CRI's RemoveContainer).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["delete".into()];
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        match self.run("delete", &args) {
            Ok(_) | Err(RuntimeError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `list` of this root: the ids skiff's runtime knows.
    pub fn list(&self) -> Result<Vec<State>, RuntimeError> {
        let out = self.run("list", &["list".into(), "--format".into(), "json".into()])?;
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let states: Option<Vec<State>> =
            serde_json::from_slice(&out.stdout).map_err(|source| RuntimeError::BadState {
                id: "<list>".into(),
                source,
            })?;
        Ok(states.unwrap_or_default())
    }
}

fn is_not_found(message: &str) -> bool {
    message.contains("does not exist")
        || message.contains("not found") && message.contains("container")
}

/// The runtime's error text: the last `error`-level entry of its JSON `--log` if it wrote
/// one, else the last non-empty line of stderr. runc's log lines are
/// `{"level":"error","msg":"...","time":"..."}`; crun's are the same shape.
pub fn error_message(log_json: Option<&[u8]>, stderr: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Entry {
        level: Option<String>,
        msg: Option<String>,
    }
    if let Some(log) = log_json {
        let last = String::from_utf8_lossy(log)
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .filter(|e| e.level.as_deref() == Some("error"))
            .find_map(|e| e.msg);
        if let Some(msg) = last {
            return msg;
        }
    }
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    // runc prints logrus lines (`time="..." level=error msg="..."`) when stderr is not a
    // terminal; keep just the message.
    if let Some(start) = line.find("msg=\"") {
        let rest = &line[start + 5..];
        let end = rest.rfind('"').unwrap_or(rest.len());
        return rest[..end].replace("\\\"", "\"");
    }
    if line.is_empty() {
        "exited with an error and no message".into()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_from_runc_json_log() {
        let log = br#"{"level":"warning","msg":"ignored","time":"t"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"t"}
"#;
        assert_eq!(
            error_message(Some(log), b"whatever"),
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
    }

    #[test]
    fn error_from_stderr_logrus_or_plain() {
        let logrus =
            br#"time="2026-01-01T00:00:00Z" level=error msg="container \"x\" does not exist""#;
        assert_eq!(
            error_message(None, logrus),
            r#"container "x" does not exist"#
        );
        assert_eq!(
            error_message(Some(b""), b"\ncrun: error: no such container\n\n"),
            "crun: error: no such container"
        );
        assert_eq!(
            error_message(None, b""),
            "exited with an error and no message"
        );
    }

    #[test]
    fn state_json_parses() {
        let s: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00.1Z","owner":""}"#,
        )
        .expect("state");
        assert_eq!(s.status, "running");
        assert_eq!(s.pid, 4242);
    }
}
