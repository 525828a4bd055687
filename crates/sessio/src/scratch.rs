//! Buffers kept per thread between calls, for work that would otherwise allocate a buffer,
//! fill it and copy out of it on every request.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A growable buffer that can be emptied and measured.
pub(crate) trait Buffer: Default {
    fn clear(&mut self);
    fn capacity(&self) -> usize;
}

impl Buffer for Vec<u8> {
    fn clear(&mut self) {
        Vec::clear(self);
    }

    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
}

impl Buffer for String {
    fn clear(&mut self) {
        String::clear(self);
    }

    fn capacity(&self) -> usize {
        String::capacity(self)
    }
}

/// Runs `f` on the thread's `buffer`, emptied. A buffer grown past `keep_at_most` bytes is
/// dropped after use rather than kept. When the thread's buffer is gone (the thread is
/// exiting) or in use further up its stack, `f` gets a new one.
// Left out of line, it costs a new visitor about 200 instructions more (callgrind).
#[inline]
pub(crate) fn with_buffer<B: Buffer, R>(
    buffer: &'static LocalKey<RefCell<B>>,
    keep_at_most: usize,
    f: impl FnOnce(&mut B) -> R,
) -> R {
    let mut f = Some(f);
    let on_thread = buffer.try_with(|buffer| {
        let mut buffer = buffer.try_borrow_mut().ok()?;
        buffer.clear();
        let result = f.take().map(|f| f(&mut buffer));
        if buffer.capacity() > keep_at_most {
            *buffer = B::default();
        }
        result
    });
    match (on_thread, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(&mut B::default()),
        (_, None) => unreachable!("`f` runs once: on the thread's buffer or on a new one"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn the_buffer_is_kept_emptied_and_dropped_when_large() {
        let address = with_buffer(&BUFFER, 64, |buffer| {
            buffer.extend_from_slice(b"abc");
            buffer.as_ptr()
        });
        with_buffer(&BUFFER, 64, |buffer| {
            assert!(buffer.is_empty(), "emptied");
            assert_eq!(buffer.as_ptr(), address, "kept");
            buffer.resize(1000, 0);
        });
        with_buffer(&BUFFER, 64, |buffer| assert_eq!(buffer.capacity(), 0));
    }

    #[test]
    fn a_nested_call_gets_its_own_buffer() {
        with_buffer(&BUFFER, 64, |outer| {
            outer.push(1);
            with_buffer(&BUFFER, 64, |inner| {
                assert!(inner.is_empty());
                inner.push(2);
            });
            assert_eq!(outer, &[1]);
        });
    }
}
