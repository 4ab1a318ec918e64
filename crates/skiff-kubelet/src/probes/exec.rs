//! Exec probes (upstream's `pkg/probe/exec/exec.go` over the runtime's `ExecSync`): the
//! command runs in the container with the probe's timeout; exit 0 is a success; stdout
//! and stderr together, capped at [`MAX_OUTPUT`], are the output either way. A timeout is
//! a failure whose output says so (upstream's `ExecProbeTimeout` behaviour).

use std::time::Duration;

use skiff_runtime::cri::{ExecOutput, PodRuntime};

use super::{Error, Outcome, MAX_OUTPUT};

/// Runs `cmd` in container `id`.
pub async fn probe(
    runtime: &dyn PodRuntime,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<Outcome, Error> {
    let out = runtime.exec_sync(id, cmd, timeout).await?;
    Ok(outcome(cmd, &out))
}

/// The probe result of an exec's output.
pub fn outcome(cmd: &[String], out: &ExecOutput) -> Outcome {
    if out.timed_out {
        return Outcome::Failure(format!("command {:?} timed out", cmd.join(" ")));
    }
    let text = combined_output(out);
    if out.exit_code == 0 {
        Outcome::Success(text)
    } else {
        Outcome::Failure(text)
    }
}

/// stdout then stderr (upstream's `RunInContainer` appends them), at most [`MAX_OUTPUT`]
/// bytes, as text.
pub fn combined_output(out: &ExecOutput) -> String {
    let mut data: Vec<u8> = out
        .stdout
        .iter()
        .chain(&out.stderr)
        .copied()
        .take(MAX_OUTPUT)
        .collect();
    data.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&data).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Vec<String> {
        vec!["sh".into(), "-c".into(), "exit 1".into()]
    }

    #[test]
    fn exit_codes_and_output() {
        let ok = ExecOutput {
            exit_code: 0,
            stdout: b"fine\n".to_vec(),
            ..Default::default()
        };
        assert_eq!(outcome(&cmd(), &ok), Outcome::Success("fine\n".into()));
        let bad = ExecOutput {
            exit_code: 1,
            stdout: b"out ".to_vec(),
            stderr: b"err".to_vec(),
            timed_out: false,
        };
        assert_eq!(outcome(&cmd(), &bad), Outcome::Failure("out err".into()));
        let slow = ExecOutput {
            exit_code: 137,
            timed_out: true,
            ..Default::default()
        };
        assert_eq!(
            outcome(&cmd(), &slow),
            Outcome::Failure("command \"sh -c exit 1\" timed out".into())
        );
    }

    #[test]
    fn output_is_capped() {
        let big = ExecOutput {
            exit_code: 0,
            stdout: vec![b'a'; 8000],
            stderr: vec![b'b'; 8000],
            timed_out: false,
        };
        let Outcome::Success(s) = outcome(&cmd(), &big) else {
            panic!("success expected")
        };
        assert_eq!(s.len(), MAX_OUTPUT);
        assert!(s.ends_with('b'));
    }
}
