//! The persisted position of a `for` loop that yields.

use std::collections::VecDeque;
use std::ops::{Range, RangeInclusive};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deps::Fault;

/// The position of a `for` loop, kept in the workflow's state: the items it has not
/// reached yet and the current one (the loop's pattern is bound again from it when the
/// workflow resumes inside the loop body).
///
/// Items are kept as JSON so the state enum can name this one type whatever the loop
/// iterates over; each is decoded to the pattern's type when its turn comes. A range
/// keeps only its bounds, so `for i in 0..1_000_000` persists two numbers.
#[doc(hidden)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForIter {
    remaining: Remaining,
    current: Option<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Remaining {
    Items(VecDeque<Value>),
    Range(Value),
    RangeInclusive { range: Value, done: bool },
}

fn fault(e: serde_json::Error) -> Fault {
    Fault::new(format!("a `for` loop's item does not (de)serialize: {e}"))
}

impl ForIter {
    fn new(remaining: Remaining) -> Self {
        ForIter {
            remaining,
            current: None,
        }
    }

    /// Starts a loop over an owned collection.
    pub fn items<I>(items: I) -> Result<Self, Fault>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        items
            .into_iter()
            .map(|item| serde_json::to_value(item).map_err(fault))
            .collect::<Result<_, _>>()
            .map(|items| ForIter::new(Remaining::Items(items)))
    }

    /// Starts a loop over `start..end`.
    pub fn range<T: Serialize>(range: Range<T>) -> Result<Self, Fault> {
        let range = serde_json::to_value(range).map_err(fault)?;
        Ok(ForIter::new(Remaining::Range(range)))
    }

    /// Starts a loop over `start..=end`.
    pub fn range_inclusive<T: Serialize>(range: RangeInclusive<T>) -> Result<Self, Fault> {
        let range = serde_json::to_value(range).map_err(fault)?;
        Ok(ForIter::new(Remaining::RangeInclusive {
            range,
            done: false,
        }))
    }

    /// The item the loop is at.
    pub fn current<T: DeserializeOwned>(&self) -> Result<T, Fault> {
        let value = self
            .current
            .clone()
            .ok_or_else(|| Fault::new("a `for` loop was resumed before its first item"))?;
        serde_json::from_value(value).map_err(fault)
    }

    fn advance<T: DeserializeOwned>(&mut self, next: Option<Value>) -> Option<Result<T, Fault>> {
        self.current = next;
        self.current
            .clone()
            .map(|v| serde_json::from_value(v).map_err(fault))
    }

    /// The next item of a collection.
    pub fn next_item<T: DeserializeOwned>(&mut self) -> Option<Result<T, Fault>> {
        let Remaining::Items(items) = &mut self.remaining else {
            return Some(Err(Fault::new("a `for` loop's state is not a collection")));
        };
        let next = items.pop_front();
        self.advance(next)
    }

    /// The next number of a half-open range.
    pub fn next_in_range<T>(&mut self) -> Option<Result<T, Fault>>
    where
        T: Serialize + DeserializeOwned,
        Range<T>: Iterator<Item = T>,
    {
        let Remaining::Range(state) = &mut self.remaining else {
            return Some(Err(Fault::new("a `for` loop's state is not a range")));
        };
        let next = step_range::<Range<T>>(state).map(|(item, _)| item);
        self.settle(next)
    }

    /// The next number of a closed range.
    pub fn next_in_range_inclusive<T>(&mut self) -> Option<Result<T, Fault>>
    where
        T: Serialize + DeserializeOwned + PartialOrd,
        RangeInclusive<T>: Iterator<Item = T>,
    {
        let Remaining::RangeInclusive { range: state, done } = &mut self.remaining else {
            return Some(Err(Fault::new("a `for` loop's state is not a range")));
        };
        if *done {
            return self.advance(None);
        }
        // A `RangeInclusive` does not serialize its "exhausted" flag, so it is kept aside.
        let next = step_range::<RangeInclusive<T>>(state).map(|(item, range)| {
            *done = range.is_empty();
            item
        });
        self.settle(next)
    }

    fn settle<T: DeserializeOwned>(
        &mut self,
        next: Result<Option<Value>, Fault>,
    ) -> Option<Result<T, Fault>> {
        match next {
            Ok(next) => self.advance(next),
            Err(e) => Some(Err(e)),
        }
    }
}

/// Takes the next item of the range persisted in `state` and persists what is left;
/// returns the item (as JSON) and the range after it.
fn step_range<R>(state: &mut Value) -> Result<(Option<Value>, R), Fault>
where
    R: Iterator + Serialize + DeserializeOwned,
    R::Item: Serialize,
{
    let mut range: R = serde_json::from_value(state.clone()).map_err(fault)?;
    let item = range
        .next()
        .map(serde_json::to_value)
        .transpose()
        .map_err(fault)?;
    *state = serde_json::to_value(&range).map_err(fault)?;
    Ok((item, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_survive_a_round_trip_through_json() {
        let mut it = ForIter::items(vec!["a".to_owned(), "b".to_owned()]).unwrap();
        assert_eq!(it.next_item::<String>().unwrap().unwrap(), "a");
        let mut it: ForIter = serde_json::from_str(&serde_json::to_string(&it).unwrap()).unwrap();
        assert_eq!(it.current::<String>().unwrap(), "a");
        assert_eq!(it.next_item::<String>().unwrap().unwrap(), "b");
        assert!(it.next_item::<String>().is_none());
    }

    #[test]
    fn ranges_keep_their_position() {
        let mut it = ForIter::range(3u32..5).unwrap();
        let got: Vec<u32> = std::iter::from_fn(|| it.next_in_range().map(Result::unwrap)).collect();
        assert_eq!(got, [3, 4]);
        let mut it = ForIter::range_inclusive(u8::MAX - 1..=u8::MAX).unwrap();
        let got: Vec<u8> =
            std::iter::from_fn(|| it.next_in_range_inclusive().map(Result::unwrap)).collect();
        assert_eq!(got, [254, 255]);
    }

    #[test]
    fn an_item_of_the_wrong_type_is_a_fault() {
        let mut it = ForIter::items(vec![1, 2]).unwrap();
        assert!(it.next_item::<String>().unwrap().is_err());
    }
}
