//! The thin shell around the `nft` command: a script on stdin (`nft -f -`, one transaction),
//! the list of tables, and the sysctls the proxy needs. The command is an argv prefix, so
//! tests run `ip netns exec NS nft`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::{script, Error, Result};

/// How `nft` is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nft {
    argv: Vec<String>,
}

impl Nft {
    /// `argv` is the command and its leading arguments (`["nft"]`, or
    /// `["ip", "netns", "exec", "NS", "nft"]`); errors when it is empty.
    pub fn new(argv: Vec<String>) -> Result<Self> {
        if argv.is_empty() {
            return Err(Error::Config("the nft command is empty".to_owned()));
        }
        Ok(Self { argv })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        cmd
    }

    /// Applies a script as one transaction (`nft -f -`).
    pub fn apply(&self, script: &str) -> Result<()> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                command: self.argv.join(" "),
                source,
            })?;
        // nft reads its whole input before it answers, but a separate writer keeps a large
        // script from ever deadlocking against a full stderr pipe.
        let mut stdin = child.stdin.take().ok_or_else(|| Error::Apply {
            status: "no stdin".to_owned(),
            stderr: String::new(),
        })?;
        let input = script.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().map_err(|source| Error::Spawn {
            command: self.argv.join(" "),
            source,
        })?;
        let written = writer.join();
        if !output.status.success() {
            return Err(Error::Apply {
                status: output.status.to_string(),
                stderr: truncate(String::from_utf8_lossy(&output.stderr).into_owned()),
            });
        }
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Spawn {
                command: self.argv.join(" "),
                source,
            }),
            Err(_) => Err(Error::Apply {
                status: "the stdin writer panicked".to_owned(),
                stderr: String::new(),
            }),
        }
    }

    /// Whether table `ip <table>` exists: `nft -c create table ip <table>` (check mode, nothing
    /// is committed) fails with "File exists" when it does. This stays cheap however large the
    /// table is, where any `list` makes nft fetch it whole (2.4 s at 10,000 Services).
    pub fn table_exists(&self, table: &str) -> Result<bool> {
        let output = self
            .command()
            .args(["-c", "create", "table", "ip", table])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                command: self.argv.join(" "),
                source,
            })?;
        if output.status.success() {
            return Ok(false);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("File exists") {
            return Ok(true);
        }
        Err(Error::Apply {
            status: output.status.to_string(),
            stderr: truncate(stderr.into_owned()),
        })
    }
}

/// Removes table `ip <table>` if it is there (for `skiff reset` and tests); other tables are
/// never touched.
pub fn remove_table(nft: &[String], table: &str) -> Result<()> {
    if !crate::render::valid_identifier(table) {
        return Err(Error::Config(format!("invalid table name {table:?}")));
    }
    Nft::new(nft.to_vec())?.apply(&script::remove(table))
}

/// Sets `net.ipv4.ip_forward=1` (the node forwards pod traffic) and
/// `net.ipv4.conf.all.route_localnet=1` (NodePorts answer on 127.0.0.1: DNATed packets with a
/// loopback source may leave the host, and are masqueraded) in the calling thread's network
/// namespace.
pub fn enable_sysctls() -> Result<()> {
    for (path, value) in [
        ("/proc/sys/net/ipv4/ip_forward", "1"),
        ("/proc/sys/net/ipv4/conf/all/route_localnet", "1"),
    ] {
        std::fs::write(path, value).map_err(|source| Error::Sysctl {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// nft echoes the failing line of the script; a huge one is cut for the log.
fn truncate(mut s: String) -> String {
    const MAX: usize = 4096;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}
