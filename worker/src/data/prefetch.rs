//! Batches built ahead of the step that trains on them.
//!
//! A batch's augmentation and normalisation run on the CPU; done between
//! steps, an accelerator would wait for them every step. A helper thread
//! builds up to `ahead` batches in advance while the caller trains. Batches
//! depend only on their index (each draws from its own seeded stream), so
//! building them on another thread changes no result.

use std::sync::mpsc::sync_channel;

/// Calls `consume(i, make(i))` for `i` in `0..count`, in order, with
/// `make` running on a helper thread up to `ahead` items in front.
///
/// An error from `consume` stops the helper (its next hand-over fails) and
/// is returned once it has stopped; a panic in `make` reaches the caller.
pub fn for_each_prefetched<T: Send, E>(
    count: usize,
    ahead: usize,
    make: impl Fn(usize) -> T + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(ahead.max(1));
        let make = &make;
        let helper = scope.spawn(move || {
            for i in 0..count {
                if sender.send(make(i)).is_err() {
                    break; // the consumer stopped early
                }
            }
        });
        let mut result = Ok(());
        for (i, item) in receiver.iter().enumerate() {
            if let Err(error) = consume(i, item) {
                result = Err(error);
                break;
            }
        }
        drop(receiver);
        if let Err(panic) = helper.join() {
            std::panic::resume_unwind(panic);
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn items_arrive_in_order_and_all_of_them() {
        let mut seen = Vec::new();
        for_each_prefetched(
            100,
            3,
            |i| i * i,
            |i, v| -> Result<(), ()> {
                seen.push((i, v));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..100).map(|i| (i, i * i)).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_stops_the_helper_and_is_returned() {
        let made = AtomicUsize::new(0);
        let result = for_each_prefetched(
            1_000,
            2,
            |i| {
                made.fetch_add(1, Ordering::SeqCst);
                i
            },
            |i, _| if i == 5 { Err(format!("stop at {i}")) } else { Ok(()) },
        );
        assert_eq!(result, Err("stop at 5".to_string()));
        // Items 0..=5 consumed, at most `ahead` queued and one in the making.
        let made = made.load(Ordering::SeqCst);
        assert!((6..=9).contains(&made), "the helper built {made} items after the consumer stopped at 6");
    }

    #[test]
    #[should_panic(expected = "bad batch")]
    fn a_panic_while_making_reaches_the_caller() {
        let _ = for_each_prefetched(
            10,
            2,
            |i| if i == 3 { panic!("bad batch") } else { i },
            |_, _| -> Result<(), ()> { Ok(()) },
        );
    }
}
