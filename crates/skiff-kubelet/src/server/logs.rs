//! `GET /containerLogs/{ns}/{pod}/{container}`: upstream's getContainerLogs and
//! kuberuntime's ReadLogs (the CRI log file, `follow` until the container exits and the
//! file is drained), the instance chosen as validateContainerLogStatus does.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use skiff_runtime::container::logs;
use skiff_runtime::cri::{ContainerInfo, ContainerState, PodRuntime};
use tokio::sync::mpsc;

use super::query::{log_options, LogQuery};
use super::{instances, running, text, Body};

/// How often a follow polls the file and the container's state.
const POLL: Duration = Duration::from_millis(100);

/// The instance whose log to show, or upstream's error.
pub(crate) fn choose<'a>(
    all: &'a [ContainerInfo],
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<&'a ContainerInfo, String> {
    let current = all.last();
    let last_terminated = |below: u32| {
        all.iter().rev().find(|c| {
            c.meta.attempt < below
                && matches!(
                    c.state,
                    ContainerState::Exited { .. } | ContainerState::Unknown { .. }
                )
        })
    };
    if previous {
        let Some(cur) = current else {
            return Err(format!(
                "previous terminated container {container:?} in pod {pod:?} not found"
            ));
        };
        return last_terminated(cur.meta.attempt).ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        });
    }
    match current {
        None => Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
        )),
        Some(c) if matches!(c.state, ContainerState::Created) => last_terminated(c.meta.attempt)
            .ok_or_else(|| {
                format!(
                    "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
                )
            }),
        Some(c) => Ok(c),
    }
}

/// Sends what the reader writes to the response body; stops at `limit` bytes.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    left: Option<u64>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let take = match self.left {
            Some(0) => {
                return Err(std::io::Error::other("limitBytes reached"));
            }
            Some(n) => data.len().min(usize::try_from(n).unwrap_or(usize::MAX)),
            None => data.len(),
        };
        self.buf.extend_from_slice(&data[..take]);
        if let Some(n) = self.left.as_mut() {
            *n -= take as u64;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("client went away"))
    }
}

pub(crate) async fn serve(
    req: &Request<Incoming>,
    runtime: Arc<dyn PodRuntime>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let q = match LogQuery::parse(req.uri().query().unwrap_or_default()) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let (pod_known, all) = match instances(runtime.as_ref(), ns, pod, container).await {
        Ok(v) => v,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if !pod_known {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod \"{ns}/{pod}\" does not exist\n"),
        );
    }
    let chosen = match choose(&all, pod, container, q.previous) {
        Ok(c) => c.clone(),
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let opts = log_options(&q, chrono::Utc::now());
    let path = chosen.meta.log_path.clone();
    let follow = q.follow && running(&chosen);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let exited = Arc::new(AtomicBool::new(!follow));
    if follow {
        // The container's state, polled: follow stops once it left Running.
        let exited = exited.clone();
        let id = chosen.id.clone();
        let tx = tx.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let still = matches!(
                    runtime.container_status(&id).await,
                    Ok(Some(ContainerInfo {
                        state: ContainerState::Running { .. },
                        ..
                    }))
                );
                if !still || tx.is_closed() {
                    exited.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
    }
    let limit = q.limit_bytes.map(|n| u64::try_from(n).unwrap_or(0));
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            left: limit,
            buf: Vec::new(),
        };
        let result = if follow {
            logs::follow(&path, &opts, &mut out, POLL, &mut || {
                exited.load(Ordering::SeqCst) || tx.is_closed()
            })
        } else {
            logs::read(&path, &opts, &mut out).map(|_| ())
        };
        let _ = out.flush();
        if let Err(e) = result {
            tracing::debug!(path = %path.display(), error = %e, "container log stream ended");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_runtime::cri::ContainerMeta;

    fn inst(attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("id{attempt}"),
            meta: ContainerMeta {
                name: "c".into(),
                attempt,
                ..Default::default()
            },
            created_at: String::new(),
            state,
        }
    }

    fn exited() -> ContainerState {
        ContainerState::Exited {
            started_at: String::new(),
            finished_at: String::new(),
            exit_code: 1,
            oom_killed: false,
        }
    }

    #[test]
    fn chooses_as_validate_container_log_status() {
        let run = ContainerState::Running {
            started_at: String::new(),
            pid: 1,
        };
        let all = [inst(0, exited()), inst(1, exited()), inst(2, run)];
        assert_eq!(choose(&all, "p", "c", false).unwrap().id, "id2");
        assert_eq!(choose(&all, "p", "c", true).unwrap().id, "id1");
        assert_eq!(
            choose(&all[2..], "p", "c", true).unwrap_err(),
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        assert_eq!(
            choose(&[], "p", "c", false).unwrap_err(),
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        // A restart created but not started: the last terminated one's log.
        let all = [inst(0, exited()), inst(1, ContainerState::Created)];
        assert_eq!(choose(&all, "p", "c", false).unwrap().id, "id0");
        assert!(choose(&all[1..], "p", "c", false).is_err());
    }

    #[test]
    fn writer_stops_at_limit_bytes() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut w = ChannelWriter {
            tx,
            left: Some(5),
            buf: Vec::new(),
        };
        w.write_all(b"abc").unwrap();
        w.write_all(b"defg").unwrap();
        assert!(w.write_all(b"h").is_err());
        w.flush().unwrap();
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"abcde"));
    }
}
