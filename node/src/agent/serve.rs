//! The control plane's calls to this node: a pod's log (`kubectl logs [-f]`),
//! and an HTTP request for a pod (the API server's pod proxy).

use std::time::{Duration, SystemTime};

use skiff_api::wire::{LogsRequest, Open, ProxyRequest, ProxyResponse, Reply};
use skiff_runtime::LogLine;

use super::{frames, stream_body};
use crate::supervisor::{PodAccessError, PodSupervisor};

/// Serves one stream the control plane opened.
pub async fn stream(
    supervisor: &PodSupervisor,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let open = match frames::expect::<Open>(&mut recv).await {
        Ok(open) => open,
        Err(e) => {
            tracing::debug!(error = %e, "bad call from the control plane");
            return;
        }
    };
    let result = match open {
        Open::Logs(request) => logs(supervisor, request, &mut send).await,
        Open::Proxy(request) => proxy(supervisor, request, recv, &mut send, access_code).await,
        other => refuse(&mut send, 400, format!("a node does not serve {other:?}")).await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "call from the control plane ended");
    }
    let _ = send.finish();
}

pub(crate) async fn refuse(
    send: &mut quinn::SendStream,
    code: u16,
    message: String,
) -> Result<(), frames::StreamError> {
    frames::write(send, &Reply::Refused { code, message }).await
}

fn access_code(e: &PodAccessError) -> u16 {
    match e {
        PodAccessError::NotFound(_) => 404,
        PodAccessError::BadRequest(_) => 400,
        PodAccessError::Unavailable(_) | PodAccessError::Failed(_) => 503,
    }
}

/// As [`access_code`], but a pod that failed the request is 502, so that a
/// peer proxy can tell it from one that never got it (404, 503) and retry
/// only those.
pub(crate) fn peer_access_code(e: &PodAccessError) -> u16 {
    match e {
        PodAccessError::Failed(_) => 502,
        e => access_code(e),
    }
}

async fn logs(
    supervisor: &PodSupervisor,
    request: LogsRequest,
    send: &mut quinn::SendStream,
) -> Result<(), frames::StreamError> {
    let buffer = match supervisor.logs(
        &request.namespace,
        &request.name,
        request.container.as_deref(),
        request.previous,
    ) {
        Ok(buffer) => buffer,
        Err(e) => return refuse(send, access_code(&e), e.to_string()).await,
    };
    frames::write(send, &Reply::Logs).await?;
    let mut budget = request.limit_bytes.unwrap_or(u64::MAX);
    let since = request
        .since_seconds
        .and_then(|s| SystemTime::now().checked_sub(Duration::from_secs(s)));
    let mut lines = buffer.lines_since(0);
    // Follow from the newest line held, whatever the filters below keep.
    let mut seen = lines.last().map_or_else(|| buffer.last_seq(), |l| l.seq);
    lines.retain(|l| since.is_none_or(|t| l.time >= t));
    if let Some(tail) = request.tail_lines {
        let skip = lines
            .len()
            .saturating_sub(usize::try_from(tail).unwrap_or(usize::MAX));
        lines.drain(..skip);
    }
    if !write_lines(send, &lines, request.timestamps, &mut budget).await? {
        return Ok(());
    }
    if !request.follow {
        return Ok(());
    }
    loop {
        let changed = buffer.changed();
        let new = buffer.lines_since(seen);
        if let Some(last) = new.last() {
            seen = last.seq;
            if !write_lines(send, &new, request.timestamps, &mut budget).await? {
                return Ok(());
            }
            continue;
        }
        if buffer.is_closed() {
            return Ok(());
        }
        // Also notice a reader that went away while the pod is quiet.
        tokio::select! {
            () = changed => {}
            _ = send.stopped() => return Ok(()),
        }
    }
}

/// Writes lines; returns false once the byte budget is spent.
async fn write_lines(
    send: &mut quinn::SendStream,
    lines: &[LogLine],
    timestamps: bool,
    budget: &mut u64,
) -> Result<bool, frames::StreamError> {
    if lines.is_empty() {
        return Ok(true);
    }
    let mut out = Vec::new();
    for line in lines {
        if timestamps {
            if let Ok(t) = jiff::Timestamp::try_from(line.time) {
                out.extend_from_slice(t.to_string().as_bytes());
            }
            out.push(b' ');
        }
        out.extend_from_slice(line.text.as_bytes());
        out.push(b'\n');
    }
    let allowed = (*budget).min(out.len() as u64) as usize;
    send.write_all(&out[..allowed]).await?;
    *budget -= allowed as u64;
    Ok(*budget > 0)
}

/// Hands a [`ProxyRequest`] (its body to the end of `recv`) to a pod and
/// writes the answer; `code` says how a failure is reported.
pub(crate) async fn proxy(
    supervisor: &PodSupervisor,
    request: ProxyRequest,
    recv: quinn::RecvStream,
    send: &mut quinn::SendStream,
    code: fn(&PodAccessError) -> u16,
) -> Result<(), frames::StreamError> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (k, v) in &request.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    // The body streams into the pod as it arrives.
    let http_request = match builder.body(stream_body::receive(recv)) {
        Ok(r) => r,
        Err(e) => return refuse(send, 400, format!("invalid request for the pod: {e}")).await,
    };
    match supervisor
        .serve(
            &request.namespace,
            &request.name,
            request.port,
            http_request,
        )
        .await
    {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let head = ProxyResponse {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect(),
            };
            frames::write(send, &Reply::Proxied(head)).await?;
            // A body that broke off has reset the stream: the caller sees it.
            if let Err(e) = stream_body::send(send, body).await {
                tracing::debug!(pod = %format!("{}/{}", request.namespace, request.name), error = %e, "a proxied response broke off");
            }
            Ok(())
        }
        Err(e) => refuse(send, code(&e), e.to_string()).await,
    }
}
