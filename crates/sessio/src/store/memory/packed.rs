//! Session data packed into one buffer: for each key, in key order, the key's length
//! (`u32`, little-endian), the key, the value's length and the value as JSON text.
//!
//! A map of values costs a node, a string per key and often more per value; this costs
//! one buffer (none of its own when short: see [`Packed`]), and a write merges its changes
//! into it without parsing the values it keeps.

use std::cell::RefCell;

use serde_json::Value;

use crate::scratch::with_buffer;
use crate::store::{Changes, Data, StoreError};

/// Packed data of this length or less is kept inline, where a heap allocation's pointer and
/// length would be: a session holding a user id or a counter takes no allocation of its own.
pub(super) const INLINE: usize = 22;

/// A packed buffer: inline when short, else in one allocation of its exact length.
pub(super) struct Packed(Repr);

enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Packed {
    pub(super) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(heap) => heap,
        }
    }

    /// Becomes `new`, written over the current storage when it fits: an allocation of
    /// the same length is kept (writing into it costs less than freeing it, which reads the
    /// allocation's header, far in memory when the store is large).
    pub(super) fn set(&mut self, new: &[u8]) {
        match (&mut self.0, inline_len(new.len())) {
            (Repr::Heap(heap), _) if heap.len() == new.len() => heap.copy_from_slice(new),
            (Repr::Inline { len, bytes }, Some(new_len)) => {
                bytes[..new.len()].copy_from_slice(new);
                *len = new_len;
            }
            _ => *self = Self::from(new),
        }
    }
}

impl From<&[u8]> for Packed {
    fn from(bytes: &[u8]) -> Self {
        Self(match inline_len(bytes.len()) {
            Some(len) => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Repr::Inline { len, bytes: inline }
            }
            None => Repr::Heap(Box::from(bytes)),
        })
    }
}

/// The length to record for `len` bytes kept inline, or `None` when they do not fit.
fn inline_len(len: usize) -> Option<u8> {
    u8::try_from(len).ok().filter(|_| len <= INLINE)
}

/// Runs `use_packed` on `data` packed (in a per-thread buffer: packing allocates nothing
/// once the thread has packed data as long before).
pub(super) fn with_packed<R>(
    data: &Data,
    use_packed: impl FnOnce(&[u8]) -> R,
) -> Result<R, StoreError> {
    with_scratch(|out| {
        pack_into(out, data.iter().map(|(key, value)| (key.as_str(), value)))?;
        Ok(use_packed(out))
    })
}

/// Packs `data`.
#[cfg(test)]
pub(super) fn pack(data: &Data) -> Result<Packed, StoreError> {
    with_packed(data, |bytes| Packed::from(bytes))
}

/// Packs `entries` in key order, whatever order they come in: a [`Data`] map iterates in
/// insertion order, not key order, when any crate in the build turns on serde_json's
/// `preserve_order` feature.
fn pack_into<'a, I>(out: &mut Vec<u8>, entries: I) -> Result<(), StoreError>
where
    I: Iterator<Item = (&'a str, &'a Value)> + Clone,
{
    let (mut in_order, mut previous) = (true, None);
    for (key, _) in entries.clone() {
        in_order &= previous < Some(key);
        previous = Some(key);
    }
    if in_order {
        for (key, value) in entries {
            push(out, key, value)?;
        }
    } else {
        let mut sorted: Vec<_> = entries.collect();
        sorted.sort_unstable_by_key(|&(key, _)| key);
        for (key, value) in sorted {
            push(out, key, value)?;
        }
    }
    Ok(())
}

/// Unpacks what [`with_packed`] or [`merge`] produced.
pub(super) fn unpack(packed: &[u8]) -> Result<Data, StoreError> {
    let mut data = Data::new();
    for entry in Entries(packed) {
        let (key, value) = entry?;
        let value: Value = serde_json::from_slice(value).map_err(decode_error)?;
        data.insert(key.to_owned(), value);
    }
    Ok(data)
}

/// Applies `changes` to `packed` as [`Changes::apply`] would to the unpacked data. The
/// buffer is written over when it can be (see [`Packed::set`]): a write that keeps the
/// data's length (a counter, a flag, a token of fixed length) allocates nothing. A damaged
/// buffer is left as it was.
pub(super) fn merge(packed: &mut Packed, changes: &Changes) -> Result<(), StoreError> {
    with_scratch(|out| {
        merge_into(out, packed.as_bytes(), changes)?;
        packed.set(out);
        Ok(())
    })
}

/// Runs `f` on an empty buffer kept per thread between calls.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    // Larger buffers are freed after use, not kept per thread.
    with_buffer(&SCRATCH, 16 * 1024, f)
}

fn merge_into(out: &mut Vec<u8>, packed: &[u8], changes: &Changes) -> Result<(), StoreError> {
    let mut stored = Entries(if changes.clears_all() { &[] } else { packed });
    let mut changed = changes.iter().peekable();
    let mut kept = stored.next().transpose()?;
    // Both sides are in key order: merge them, a change replacing a kept key.
    loop {
        let next_is_kept = match (kept, changed.peek()) {
            (None, None) => break,
            (Some((key, _)), Some((name, _))) => key < *name,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if next_is_kept {
            if let Some((key, value)) = kept {
                push_raw(out, key, value)?;
            }
            kept = stored.next().transpose()?;
        } else if let Some((name, change)) = changed.next() {
            if let Some(value) = change {
                push(out, name, value)?;
            }
            if kept.is_some_and(|(key, _)| key == name) {
                kept = stored.next().transpose()?;
            }
        }
    }
    Ok(())
}

fn push(out: &mut Vec<u8>, key: &str, value: &Value) -> Result<(), StoreError> {
    push_bytes(out, key.as_bytes())?;
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    // Cannot fail for a JSON value written to memory.
    serde_json::to_writer(&mut *out, value).map_err(|e| StoreError::Backend(Box::new(e)))?;
    let len = length(out.len() - at - 4)?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn push_raw(out: &mut Vec<u8>, key: &str, value: &[u8]) -> Result<(), StoreError> {
    push_bytes(out, key.as_bytes())?;
    push_bytes(out, value)
}

/// Appends `bytes` after their length.
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    out.extend_from_slice(&length(bytes.len())?.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn length(len: usize) -> Result<u32, StoreError> {
    u32::try_from(len).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The entries of a packed buffer: each key with its value's JSON text.
struct Entries<'a>(&'a [u8]);

impl<'a> Entries<'a> {
    fn take(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (taken, rest) = rest.split_at(len);
        self.0 = rest;
        Some(taken)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<(&'a str, &'a [u8]), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let entry = (|| {
            let key = std::str::from_utf8(self.take()?).ok()?;
            Some((key, self.take()?))
        })();
        if entry.is_none() {
            // Stop after the first damaged entry.
            self.0 = &[];
        }
        Some(entry.ok_or_else(corrupt))
    }
}

fn corrupt() -> StoreError {
    StoreError::Decode("packed session data is damaged".into())
}

fn decode_error(error: serde_json::Error) -> StoreError {
    StoreError::Decode(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn data() -> impl Strategy<Value = Data> {
        prop::collection::btree_map("[a-c]{0,3}|.{0,6}", value(), 0..6)
            .prop_map(|map| map.into_iter().collect())
    }

    fn changes() -> impl Strategy<Value = Changes> {
        (
            any::<bool>(),
            prop::collection::vec(("[a-c]{0,3}|.{0,6}", prop::option::of(value())), 0..6),
        )
            .prop_map(|(clear, entries)| {
                let mut changes = Changes::default();
                if clear {
                    changes.clear();
                }
                for (key, value) in entries {
                    match value {
                        Some(value) => changes.set(key, value),
                        None => changes.remove(key),
                    }
                }
                changes
            })
    }

    proptest! {
        #[test]
        fn setting_packed_bytes_keeps_them(
            first in prop::collection::vec(any::<u8>(), 0..64),
            second in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut packed = Packed::from(&first[..]);
            prop_assert_eq!(packed.as_bytes(), &first[..]);
            let heap_before = (!is_inline(&packed)).then(|| packed.as_bytes().as_ptr());
            packed.set(&second);
            prop_assert_eq!(packed.as_bytes(), &second[..]);
            prop_assert_eq!(is_inline(&packed), second.len() <= INLINE);
            if first.len() == second.len() && heap_before.is_some() {
                // An allocation of the same length is written over.
                prop_assert_eq!(Some(packed.as_bytes().as_ptr()), heap_before);
            }
        }

        #[test]
        fn unpack_inverts_pack(data in data()) {
            prop_assert_eq!(unpack(pack(&data).unwrap().as_bytes()).unwrap(), data);
        }

        #[test]
        fn merge_is_apply(data in data(), changes in changes()) {
            let mut expected = data.clone();
            changes.apply(&mut expected);
            let mut merged = pack(&data).unwrap();
            merge(&mut merged, &changes).unwrap();
            prop_assert_eq!(unpack(merged.as_bytes()).unwrap(), expected.clone());
            // The same bytes as packing the result: keys stay in order, none twice.
            let repacked = pack(&expected).unwrap();
            prop_assert_eq!(merged.as_bytes(), repacked.as_bytes());
        }

        /// What a map in insertion order (serde_json's `preserve_order`) would hand over.
        #[test]
        fn packing_does_not_depend_on_the_maps_order(data in data()) {
            let reversed = data.iter().rev().map(|(key, value)| (key.as_str(), value));
            let mut packed = Vec::new();
            pack_into(&mut packed, reversed).unwrap();
            let in_order = pack(&data).unwrap();
            prop_assert_eq!(&packed[..], in_order.as_bytes());
        }

        #[test]
        fn damaged_buffers_are_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = unpack(&bytes);
            let mut changes = Changes::default();
            changes.set("k", json!(1));
            let mut packed = Packed::from(&bytes[..]);
            if merge(&mut packed, &changes).is_err() {
                prop_assert_eq!(packed.as_bytes(), &bytes[..]);
            }
        }
    }

    #[test]
    fn a_write_of_the_same_length_reuses_the_buffer() {
        let mut data = Data::new();
        data.insert("page_views".into(), json!(1));
        data.insert("user".into(), json!("ada"));
        let mut packed = pack(&data).unwrap();
        assert!(packed.as_bytes().len() > INLINE, "on the heap");
        let before = packed.as_bytes().as_ptr();
        let mut changes = Changes::default();
        changes.set("page_views", json!(2));
        merge(&mut packed, &changes).unwrap();
        assert_eq!(packed.as_bytes().as_ptr(), before, "written over in place");
        data.insert("page_views".into(), json!(2));
        assert_eq!(unpack(packed.as_bytes()).unwrap(), data);

        // Longer: a new buffer of the new length.
        changes.set("page_views", json!(10));
        merge(&mut packed, &changes).unwrap();
        data.insert("page_views".into(), json!(10));
        assert_eq!(packed.as_bytes(), pack(&data).unwrap().as_bytes());
    }

    #[test]
    fn a_merge_works_while_its_thread_exits() {
        // Its destructor runs after the scratch buffer's (destructors run in the reverse
        // order of first use), so the merge finds the buffer gone.
        struct MergesOnDrop;
        impl Drop for MergesOnDrop {
            fn drop(&mut self) {
                let mut packed = pack(&Data::new()).unwrap();
                let mut changes = Changes::default();
                changes.set("k", json!(1));
                merge(&mut packed, &changes).unwrap();
                let mut expected = Data::new();
                expected.insert("k".into(), json!(1));
                assert_eq!(unpack(packed.as_bytes()).unwrap(), expected);
            }
        }
        thread_local! {
            static GUARD: MergesOnDrop = const { MergesOnDrop };
        }
        std::thread::spawn(|| {
            GUARD.with(|_| {});
            let mut packed = pack(&Data::new()).unwrap();
            merge(&mut packed, &Changes::default()).unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_large_merge_does_not_spoil_the_next_one() {
        let mut big = Data::new();
        big.insert("blob".into(), json!("x".repeat(100_000)));
        let mut packed = pack(&big).unwrap();
        let mut changes = Changes::default();
        changes.set("blob", json!("y".repeat(100_000)));
        merge(&mut packed, &changes).unwrap();
        let mut small = pack(&Data::new()).unwrap();
        changes = Changes::default();
        changes.set("k", json!(1));
        merge(&mut small, &changes).unwrap();
        let mut expected = Data::new();
        expected.insert("k".into(), json!(1));
        assert_eq!(unpack(small.as_bytes()).unwrap(), expected);
    }

    #[test]
    fn a_one_key_session_packs_small() {
        let mut data = Data::new();
        data.insert("page_views".into(), json!(1));
        // 4 + 10 + 4 + 1: kept inline, with no allocation of its own.
        let packed = pack(&data).unwrap();
        assert_eq!(packed.as_bytes().len(), 19);
        assert!(is_inline(&packed));
    }

    /// Whether `packed` keeps its bytes within itself.
    fn is_inline(packed: &Packed) -> bool {
        let start = std::ptr::from_ref(packed).cast::<u8>();
        let within = start..start.wrapping_add(std::mem::size_of::<Packed>());
        within.contains(&packed.as_bytes().as_ptr())
    }

    #[test]
    fn short_data_is_inline_and_longer_data_on_the_heap() {
        for len in [0, 1, INLINE - 1, INLINE] {
            assert!(is_inline(&Packed::from(&vec![7; len][..])), "{len} bytes");
        }
        for len in [INLINE + 1, 255, 256, 10_000] {
            assert!(!is_inline(&Packed::from(&vec![7; len][..])), "{len} bytes");
        }
        // The slot of the shard's vector has room for it (see `an_entry_is_small`).
        assert!(std::mem::size_of::<Packed>() <= 24);
    }

    #[test]
    fn packing_works_while_the_buffer_is_in_use() {
        // A merge inside the closure finds the thread's buffer borrowed and uses its own.
        let mut data = Data::new();
        data.insert("a".into(), json!("x".repeat(40)));
        let outer = with_packed(&data, |bytes| {
            let mut inner = Packed::from(bytes);
            let mut changes = Changes::default();
            changes.set("b", json!(2));
            merge(&mut inner, &changes).unwrap();
            (bytes.to_vec(), unpack(inner.as_bytes()).unwrap())
        })
        .unwrap();
        assert_eq!(unpack(&outer.0).unwrap(), data);
        data.insert("b".into(), json!(2));
        assert_eq!(outer.1, data);
    }

    #[test]
    fn a_truncated_buffer_is_a_decode_error() {
        let mut data = Data::new();
        data.insert("k".into(), json!("value"));
        let packed = pack(&data).unwrap();
        let packed = packed.as_bytes();
        let error = unpack(&packed[..packed.len() - 1]).unwrap_err();
        assert!(matches!(error, StoreError::Decode(_)));
    }
}
