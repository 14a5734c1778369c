//! Writing a locally made `Response` onto the session, with the framing it decides; a
//! streamed body chunk by chunk as its producer makes them.

use crate::response::Response;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::borrow::Cow;

pub async fn write_response(session: &mut Session, resp: &Response) -> pingora::Result<()> {
    let framing = resp.framing();
    // Without the case map: what this writes needs none, and it is the cheaper header.
    let mut header = ResponseHeader::build_no_case(resp.status, Some(resp.headers.len() + 2))?;
    if let Some(content_type) = framing.content_type {
        header.insert_header("Content-Type", content_type)?;
    }
    if let Some(length) = framing.content_length {
        header.insert_header("Content-Length", length.to_string())?;
    }
    if framing.chunked {
        header.insert_header("Transfer-Encoding", "chunked")?;
    }
    for (name, value) in &resp.headers {
        match name {
            Cow::Borrowed(name) => header.append_header(*name, value.as_str())?,
            Cow::Owned(name) => header.append_header(name.clone(), value.as_str())?,
        };
    }
    session
        .write_response_header(Box::new(header), !framing.sends_body)
        .await?;
    if !framing.sends_body {
        return Ok(());
    }
    if let Some(stream) = &resp.stream {
        let Some(mut chunks) = stream.take() else {
            return Err(pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "a streamed body was written twice",
            ));
        };
        while let Some(chunk) = chunks.recv().await {
            match chunk {
                Ok(bytes) => session.write_response_body(Some(bytes), false).await?,
                // Unfinished on purpose: no last chunk, the connection closes.
                Err(why) => {
                    return Err(pingora::Error::explain(
                        pingora::ErrorType::InternalError,
                        format!("a streamed body stopped: {why}"),
                    ))
                }
            }
        }
        session.write_response_body(None, true).await?;
    } else {
        session
            .write_response_body(Some(resp.body.clone()), true)
            .await?;
    }
    Ok(())
}
