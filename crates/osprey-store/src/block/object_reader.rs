//! Reads a block's Parquet file from the object store in ranges (footer, page index, the pages a
//! query needs), counting every request and the bytes read.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use prometheus_client::metrics::counter::Counter;

pub struct ObjectReader {
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
    /// The file's size, from the block's meta: the footer is read without asking for it.
    pub size: u64,
    pub requests: Counter,
    pub bytes_read: Counter,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        self.requests.inc();
        self.bytes_read.inc_by(range.end - range.start);
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        // object_store coalesces nearby ranges; count what it is asked for at once as one request.
        self.requests.inc();
        self.bytes_read
            .inc_by(ranges.iter().map(|r| r.end - r.start).sum());
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    /// The footer with the page index (column and offset indexes), which lookups by id and
    /// time-pruned scans use to skip pages.
    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
