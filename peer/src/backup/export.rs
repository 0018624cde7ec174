//! Writing an export: the [`Walk`] runs on a blocking thread (sled reads), hands its objects
//! through a small bounded channel to the CAR v1 writer (iroh-car), which writes to any
//! `AsyncWrite`: a file, or the pipe behind an HTTP response. Memory stays bounded by the
//! channel and the walk, whatever the journal's size; a reader that goes away stops the walk.

use std::io;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use iroh_car::{CarHeader, CarWriter};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, Instrument};

use super::walk::{Walk, WalkError};
use crate::journal::{IndexRead, Objects};
use crate::model::Cid;

/// Media type of an export (CAR v1).
pub const CONTENT_TYPE: &str = "application/vnd.ipld.car; version=1";

/// Objects in flight between the walk and the writer.
const CHANNEL: usize = 32;

/// Bytes buffered between the writer and an HTTP response.
const PIPE_BYTES: usize = 256 * 1024;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The height asked for is beyond the tip.
    #[error("height {requested} is above the journal's tip at height {tip}")]
    AboveTip {
        /// Requested height.
        requested: u64,
        /// The tip's height.
        tip: u64,
    },
    /// The index could not be read.
    #[error("journal index: {0}")]
    Index(String),
    /// The datastore lacks something the export needs.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// Writing the CAR failed (disk full, reader gone).
    #[error("writing the CAR file: {0}")]
    Write(String),
    /// The export task ended without a result.
    #[error("the export task ended unexpectedly")]
    Aborted,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// The root block.
    pub root: Cid,
    /// Its height.
    pub height: u64,
    /// Sections written (blocks and objects).
    pub sections: u64,
    /// Bytes of block and object data written (without CAR framing).
    pub bytes: u64,
}

/// The block at `height` (the tip when `None`) and its height.
pub fn root_at(index: &impl IndexRead, height: Option<u64>) -> Result<(Cid, u64), ExportError> {
    let index_error = |e: crate::journal::index::IndexError| ExportError::Index(e.to_string());
    let (tip, tip_height) = index
        .tip()
        .map_err(index_error)?
        .ok_or_else(|| ExportError::Index("the journal has no genesis".into()))?;
    match height {
        None => Ok((tip, tip_height)),
        Some(h) if h > tip_height => Err(ExportError::AboveTip {
            requested: h,
            tip: tip_height,
        }),
        Some(h) => index
            .block_at(h)
            .map_err(index_error)?
            .map(|cid| (cid, h))
            .ok_or_else(|| ExportError::Index(format!("no block at height {h}"))),
    }
}

/// Starts the walk from `root` on a blocking thread; its objects arrive on the receiver.
fn spawn_walk<O>(objects: O, root: Cid) -> mpsc::Receiver<Result<(Cid, Vec<u8>), WalkError>>
where
    O: Objects + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::task::spawn_blocking(move || {
        for item in Walk::new(&objects, root) {
            if tx.blocking_send(item).is_err() {
                break; // the writer stopped
            }
        }
    });
    rx
}

/// Writes the export of the block `root` (at `height`) from `objects` as CAR v1 to `out`.
pub async fn write_car<O, W>(
    objects: O,
    (root, height): (Cid, u64),
    out: W,
) -> Result<ExportReport, ExportError>
where
    O: Objects + Send + 'static,
    W: AsyncWrite + Send + Unpin,
{
    let span = info_span!("export", %root, height);
    async move {
        let write = |e: iroh_car::Error| ExportError::Write(e.to_string());
        let mut items = spawn_walk(objects, root);
        let mut car = CarWriter::new(CarHeader::new_v1(vec![root]), out);
        car.write_header().await.map_err(write)?;
        let mut report = ExportReport {
            root,
            height,
            sections: 0,
            bytes: 0,
        };
        while let Some(item) = items.recv().await {
            let (cid, bytes) = item?;
            car.write(cid, &bytes).await.map_err(write)?;
            report.sections += 1;
            report.bytes += bytes.len() as u64;
        }
        car.finish().await.map_err(write)?;
        info!(
            sections = report.sections,
            bytes = report.bytes,
            "export written"
        );
        Ok(report)
    }
    .instrument(span)
    .await
}

/// The export as a stream of byte chunks (an HTTP body). A failure mid-way ends the stream with
/// an error, so the response is cut short instead of looking complete.
pub fn car_stream<O>(
    objects: O,
    root: (Cid, u64),
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static
where
    O: Objects + Send + 'static,
{
    let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = done_tx.send(write_car(objects, root, writer).await);
    });
    let outcome = futures::stream::once(done_rx).filter_map(|result| async move {
        match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(Err(io::Error::other(e.to_string()))),
            Err(_) => Some(Err(io::Error::other(ExportError::Aborted.to_string()))),
        }
    });
    tokio_util::io::ReaderStream::new(reader).chain(outcome)
}
