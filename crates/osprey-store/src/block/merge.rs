//! Compaction's input: the rows of several blocks, each sorted by trace id, merged into one trace-id
//! order and handed to a [`BlockWriter`] trace by trace. A batch of each input is decoded at a time,
//! so memory does not grow with the size of the blocks.

use std::io;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{BinaryArray, RecordBatch};

use osprey_model::TraceId;

use super::read::{OwnedRow, RowReader};
use super::schema::col;
use super::write::BlockWriter;
use super::{io_error, Batches, Block};

/// Rows decoded at a time from each input.
const BATCH_ROWS: usize = 4096;

fn trace_ids(batch: &RecordBatch) -> io::Result<&BinaryArray> {
    Ok(batch
        .column_by_name(col::TRACE_ID)
        .ok_or_else(|| io_error("a batch without trace ids"))?
        .as_binary::<i32>())
}

/// Where one input block is: its current batch and row.
struct Cursor<'a> {
    block: &'a Block,
    batches: Batches<'a>,
    batch: Option<RecordBatch>,
    row: usize,
}

impl<'a> Cursor<'a> {
    fn open(block: &'a Block) -> io::Result<Cursor<'a>> {
        let mut cursor = Cursor {
            block,
            batches: block.batches(None, None, BATCH_ROWS)?,
            batch: None,
            row: 0,
        };
        cursor.next_batch()?;
        Ok(cursor)
    }

    /// Moves to the next batch with rows (none at the end).
    fn next_batch(&mut self) -> io::Result<()> {
        self.row = 0;
        loop {
            self.batch = self.batches.next().transpose()?;
            if self.batch.as_ref().is_none_or(|b| b.num_rows() > 0) {
                return Ok(());
            }
        }
    }

    /// The trace id of the current row; `None` once every row was taken.
    fn peek(&self) -> io::Result<Option<TraceId>> {
        let Some(batch) = &self.batch else {
            return Ok(None);
        };
        TraceId::from_bytes(trace_ids(batch)?.value(self.row))
            .map(Some)
            .map_err(|e| io_error(format!("block {}: a trace id: {e}", self.block.id())))
    }

    /// Takes the rows of trace `id` from here on (it may go on into the next batch).
    fn take(&mut self, id: TraceId, out: &mut Vec<OwnedRow>) -> io::Result<()> {
        while let Some(batch) = &self.batch {
            let reader = RowReader::new(batch);
            let ids = trace_ids(batch)?;
            while self.row < batch.num_rows() && ids.value(self.row) == id.0 {
                out.push(reader.owned(self.row));
                self.row += 1;
            }
            if self.row < batch.num_rows() {
                return Ok(());
            }
            self.next_batch()?;
        }
        Ok(())
    }
}

/// Writes every span of `inputs` into `writer`, in trace-id order; a trace held by several inputs
/// is written as one (a span held twice, once).
pub(crate) fn merge(inputs: &[Arc<Block>], writer: &mut BlockWriter) -> io::Result<()> {
    let mut cursors = inputs
        .iter()
        .map(|b| Cursor::open(b))
        .collect::<io::Result<Vec<_>>>()?;
    let mut owned = Vec::new();
    loop {
        let mut next: Option<TraceId> = None;
        for cursor in &cursors {
            if let Some(id) = cursor.peek()? {
                next = Some(next.map_or(id, |n| n.min(id)));
            }
        }
        let Some(id) = next else {
            return Ok(());
        };
        owned.clear();
        for cursor in &mut cursors {
            if cursor.peek()? == Some(id) {
                cursor.take(id, &mut owned)?;
            }
        }
        let mut rows = owned.iter().map(OwnedRow::as_row).collect();
        writer.push_trace(&mut rows).map_err(io_error)?;
    }
}
