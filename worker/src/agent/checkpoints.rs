//! Moving checkpoint files to and from the coordinator, in 1 MiB chunks,
//! checked by size and SHA-256 on both sides.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use widesweep_proto::client::WorkerClient;
use widesweep_proto::v1 as pb;
use widesweep_proto::v1::checkpoint_chunk::Chunk;

use super::rpc::{self, CallError, Patience};

const CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("checkpoint file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("checkpoint download broke off: {0}")]
    Stream(tonic::Status),
    #[error("downloaded checkpoint is corrupt: {0}")]
    Corrupt(String),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::File { path: path.display().to_string(), source }
}

/// Uploads the checkpoint at `path`, saved after `epoch`, for this attempt.
pub async fn upload(
    client: &WorkerClient,
    job_id: i64,
    attempt: u32,
    lease_token: &str,
    epoch: u32,
    path: &Path,
    patience: &Patience,
) -> Result<pb::CheckpointRef, TransferError> {
    let bytes = tokio::fs::read(path).await.map_err(file_error(path))?;
    let header = pb::CheckpointHeader {
        job_id,
        attempt,
        epoch,
        size_bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        lease_token: lease_token.to_string(),
    };
    let stored = rpc::call("upload a checkpoint", patience, || {
        let mut client = client.clone();
        let mut messages = vec![pb::CheckpointChunk { chunk: Some(Chunk::Header(header.clone())) }];
        messages
            .extend(bytes.chunks(CHUNK_BYTES).map(|c| pb::CheckpointChunk { chunk: Some(Chunk::Data(c.to_vec())) }));
        async move { client.upload_checkpoint(tokio_stream::iter(messages)).await }
    })
    .await?;
    Ok(stored)
}

/// Downloads checkpoint `checkpoint` of this attempt's job into `path`.
pub async fn download(
    client: &WorkerClient,
    job_id: i64,
    attempt: u32,
    lease_token: &str,
    checkpoint: &pb::CheckpointRef,
    path: &Path,
    patience: &Patience,
) -> Result<(), TransferError> {
    let request = pb::DownloadCheckpointRequest {
        job_id,
        attempt,
        checkpoint_id: checkpoint.checkpoint_id,
        lease_token: lease_token.to_string(),
    };
    let mut stream = rpc::call("download a checkpoint", patience, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move { client.download_checkpoint(request).await }
    })
    .await?;
    let mut file = tokio::fs::File::create(path).await.map_err(file_error(path))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(message) = stream.next().await {
        match message.map_err(TransferError::Stream)?.chunk {
            Some(Chunk::Data(data)) => {
                hasher.update(&data);
                size += data.len() as u64;
                file.write_all(&data).await.map_err(file_error(path))?;
            }
            Some(Chunk::Header(_)) | None => {}
        }
    }
    file.flush().await.map_err(file_error(path))?;
    let sha256 = hex::encode(hasher.finalize());
    if size != checkpoint.size_bytes || sha256 != checkpoint.sha256 {
        return Err(TransferError::Corrupt(format!(
            "{size} bytes with SHA-256 {sha256}, expected {} bytes with {}",
            checkpoint.size_bytes, checkpoint.sha256
        )));
    }
    Ok(())
}
