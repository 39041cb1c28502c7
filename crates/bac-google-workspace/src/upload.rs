//! Drive uploads: multipart (`uploadType=multipart`, metadata and bytes in one request) for
//! small files, resumable (`uploadType=resumable`) above [`RESUMABLE_ABOVE`]: a session
//! URI, then chunks of [`CHUNK`] bytes with `Content-Range`; when a chunk is cut off or
//! answered 5xx, the session is asked how far it got (`Content-Range: bytes */total`, answered
//! 308 with `Range`) and the upload goes on from the next byte, never from the start.
use bac_runtime::{ErrorCode, ServiceError};
use serde_json::{json, Value};

use crate::client::{Api, Body, GoogleCall, GoogleClient};
use bac_runtime::connections::ConnectionRecord;

/// Files larger than this go up in a resumable session (Google advises it above 5 MB).
pub const RESUMABLE_ABOVE: usize = 5 * 1024 * 1024;
/// One chunk (a multiple of 256 KiB, as Google requires of every chunk but the last).
pub const CHUNK: usize = 8 * 1024 * 1024;
/// Times a session is asked where it stands and resumed before the upload gives up.
const MAX_RESUMES: u32 = 8;

/// The fields of a file the fleet reads back.
pub const FILE_FIELDS: &str =
    "id,name,mimeType,size,parents,webViewLink,md5Checksum,modifiedTime,trashed,description";

fn internal(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("google-workspace", ErrorCode::Internal, msg)
}

/// What to upload.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub name: String,
    pub mime_type: String,
    pub parents: Vec<String>,
    pub description: String,
    pub content: Vec<u8>,
}

impl NewFile {
    fn metadata(&self) -> Value {
        let mut m = json!({"name": self.name, "mimeType": self.mime_type});
        if !self.parents.is_empty() {
            m["parents"] = json!(self.parents);
        }
        if !self.description.is_empty() {
            m["description"] = json!(self.description);
        }
        m
    }
}

/// Uploads `file` to `user`'s Drive and answers the file's metadata.
pub async fn upload(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    file: &NewFile,
) -> Result<Value, ServiceError> {
    if file.content.len() <= RESUMABLE_ABOVE {
        multipart(client, rec, user, file).await
    } else {
        resumable(client, rec, user, file).await
    }
}

async fn multipart(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    file: &NewFile,
) -> Result<Value, ServiceError> {
    let boundary = format!("bac-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::with_capacity(file.content.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: {}\r\n\r\n",
            file.metadata(),
            file.mime_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file.content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let call = GoogleCall {
        method: http::Method::POST,
        body: Body::Bytes {
            content_type: format!("multipart/related; boundary={boundary}"),
            bytes: body,
        },
        idempotent: false,
        ..GoogleCall::get(
            Api::DriveUpload,
            "/upload/drive/v3/files",
            "drive/files.create",
        )
    }
    .query("uploadType", "multipart")
    .query("fields", FILE_FIELDS);
    Ok(client.send(rec, user, &call).await?.body)
}

/// The last byte a 308's `Range: bytes=0-N` acknowledges, as the next offset (N + 1); no
/// `Range`: nothing yet.
fn acknowledged(headers: &http::HeaderMap) -> usize {
    headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(0, |n| n + 1)
}

async fn resumable(
    client: &GoogleClient,
    rec: &ConnectionRecord,
    user: &str,
    file: &NewFile,
) -> Result<Value, ServiceError> {
    let total = file.content.len();
    let start = GoogleCall::post(
        Api::DriveUpload,
        "/upload/drive/v3/files",
        file.metadata(),
        "drive/files.create.resumable",
    )
    .query("uploadType", "resumable")
    .query("fields", FILE_FIELDS)
    .header("x-upload-content-type", file.mime_type.clone())
    .header("x-upload-content-length", total.to_string());
    let answer = client.send(rec, user, &start).await?;
    let session = answer
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| internal("Drive opened no upload session (no Location)"))?;
    let mut offset = 0usize;
    let mut resumes = 0u32;
    loop {
        let end = (offset + CHUNK).min(total);
        let chunk = GoogleCall {
            method: http::Method::PUT,
            body: Body::Bytes {
                content_type: String::new(),
                bytes: file.content[offset..end].to_vec(),
            },
            idempotent: false,
            ..GoogleCall::get(
                Api::DriveUpload,
                session.clone(),
                "drive/files.upload_chunk",
            )
        }
        .header(
            "content-range",
            format!("bytes {offset}-{}/{total}", end.saturating_sub(1)),
        );
        match client.send_accepting(rec, user, &chunk, &[308]).await {
            Ok(a) if a.status == 308 => offset = acknowledged(&a.headers),
            Ok(a) => return Ok(a.body),
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::UpstreamUnavailable | ErrorCode::ConnectionTimeout
                ) && resumes < MAX_RESUMES =>
            {
                resumes += 1;
                tracing::warn!(offset, total, error = %e, "a Drive upload chunk failed; asking the session where it stands");
                let status = GoogleCall {
                    method: http::Method::PUT,
                    body: Body::Bytes {
                        content_type: String::new(),
                        bytes: Vec::new(),
                    },
                    idempotent: true,
                    ..GoogleCall::get(
                        Api::DriveUpload,
                        session.clone(),
                        "drive/files.upload_status",
                    )
                }
                .header("content-range", format!("bytes */{total}"));
                let a = client.send_accepting(rec, user, &status, &[308]).await?;
                if a.status != 308 {
                    return Ok(a.body);
                }
                offset = acknowledged(&a.headers);
                tracing::info!(offset, total, "resuming the Drive upload");
            }
            Err(e) => return Err(e),
        }
        if offset > total {
            return Err(internal("Drive acknowledged more bytes than were sent"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_308_says_where_to_go_on() {
        let mut h = http::HeaderMap::new();
        assert_eq!(acknowledged(&h), 0);
        h.insert(http::header::RANGE, "bytes=0-3145727".parse().unwrap());
        assert_eq!(acknowledged(&h), 3_145_728);
    }
}
