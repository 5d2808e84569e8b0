//! Reordering columns by a permutation (the block's sort) without arrow's row-at-a-time path for
//! nested lists: a list column is reordered by expanding the row order into the order of its values,
//! which are then reordered as flat arrays (recursively for lists inside structs inside lists).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, StructArray, UInt32Array};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType};

/// `array` reordered so that row `i` of the result is row `indices[i]` of `array`.
pub fn take(array: &ArrayRef, indices: &UInt32Array) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let (offsets, values) = list_order(list, indices);
            let field = match list.data_type() {
                DataType::List(field) => field.clone(),
                _ => unreachable!("matched a list"),
            };
            Ok(Arc::new(ListArray::try_new(
                field,
                offsets,
                take(list.values(), &values)?,
                None,
            )?))
        }
        DataType::Struct(fields) if array.null_count() == 0 => {
            let structs = array.as_struct();
            let columns = structs
                .columns()
                .iter()
                .map(|c| take(c, indices))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                None,
            )?))
        }
        _ => arrow_select::take::take(array, indices, None),
    }
}

/// The reordered list's offsets, and the order of its values.
fn list_order(list: &ListArray, indices: &UInt32Array) -> (OffsetBuffer<i32>, UInt32Array) {
    let source = list.value_offsets();
    let mut offsets = Vec::with_capacity(indices.len() + 1);
    let mut values = Vec::with_capacity(list.values().len());
    offsets.push(0i32);
    for &row in indices.values() {
        let (start, end) = (source[row as usize], source[row as usize + 1]);
        values.extend(start as u32..end as u32);
        offsets.push(values.len() as i32);
    }
    (
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        UInt32Array::from(values),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Int64Builder, ListBuilder};

    #[test]
    fn reorders_nested_lists_like_arrow_does() {
        let mut builder = ListBuilder::new(Int64Builder::new());
        for row in [vec![1, 2], vec![], vec![3], vec![4, 5, 6]] {
            for v in row {
                builder.values().append_value(v);
            }
            builder.append(true);
        }
        let array: ArrayRef = Arc::new(builder.finish());
        let indices = UInt32Array::from(vec![3, 0, 1, 2, 0]);
        let ours = take(&array, &indices).unwrap();
        let arrows = arrow_select::take::take(&array, &indices, None).unwrap();
        assert_eq!(ours.as_ref(), arrows.as_ref());
    }
}
