//! An ordered, multi-valued header map: the host's view of request and response headers.

use std::fmt;

/// Header names (lower case, pseudo-headers such as `:path` included) with their values, in
/// order. Values are bytes: HTTP allows non-UTF-8 values, and plugins decide how to read them.
///
/// The pairs are stored back to back in two buffers (names, values) with one small record per
/// pair, so a map costs three allocations however many headers it has: the gateway builds
/// one or two per request, and a filter that never looks at them should not pay for a
/// `String` and a `Vec` per header.
///
/// The map remembers whether it was changed ([`Self::is_changed`]) since it was built or
/// [marked unchanged](Self::mark_unchanged): the gateway writes headers back only when a
/// filter changed them, without keeping a copy to compare with.
#[derive(Clone, Default)]
pub struct HeaderMap {
    /// Every name, concatenated in pair order.
    names: String,
    /// Every value, concatenated in pair order.
    values: Vec<u8>,
    /// For each pair, where its name and its value end in `names` and `values` (each starts
    /// where the previous pair's ends): no gaps, so equal maps have equal buffers.
    ends: Vec<(u32, u32)>,
    /// Whether `add`, `replace` or `remove` changed the map since it was built.
    changed: bool,
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `pairs` pairs of `bytes` bytes of names and values in all,
    /// so that building it allocates once per buffer.
    pub fn with_capacity(pairs: usize, bytes: usize) -> Self {
        Self {
            names: String::with_capacity(bytes / 2),
            values: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(pairs),
            changed: false,
        }
    }

    /// A map of the given pairs; names are lower-cased. It counts as unchanged.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let pairs = pairs.into_iter();
        // Room for typical headers (short names, longer values), so the buffers rarely grow.
        let expected = pairs.size_hint().0;
        let mut map = Self {
            names: String::with_capacity(expected * 16),
            values: Vec::with_capacity(expected * 32),
            ends: Vec::with_capacity(expected),
            changed: false,
        };
        for (name, value) in pairs {
            map.push(name.as_ref(), value.as_ref());
        }
        map
    }

    /// Appends a pair without counting it as a change.
    fn push(&mut self, name: &str, value: &[u8]) {
        let start = self.names.len();
        self.names.push_str(name);
        // Header names are ASCII tokens; lower-casing in place leaves any other byte alone.
        self.names[start..].make_ascii_lowercase();
        self.values.extend_from_slice(value);
        self.ends
            .push((offset(self.names.len()), offset(self.values.len())));
    }

    /// The number of pairs (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Whether `add`, `replace` or `remove` changed the map since it was built (or since
    /// [`Self::mark_unchanged`]). Replacing a value with an equal one counts as a change.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Forgets earlier changes: [`Self::is_changed`] is false until the next one.
    pub fn mark_unchanged(&mut self) {
        self.changed = false;
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of `name`, when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Sets `name` to a single value, in place of the first existing one (keeps its position).
    pub fn replace(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        self.changed = true;
        let (first, only_one) = {
            let mut matches = self
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
                .map(|(index, _)| index);
            (matches.next(), matches.next().is_none())
        };
        let Some(first) = first else {
            self.push(name, &value);
            return;
        };
        let (start, end) = self.value_range(first);
        if only_one && end - start == value.len() {
            // The common case of a header set to a value of the same length: no reshuffling.
            self.values[start..end].copy_from_slice(&value);
            return;
        }
        self.rebuild(|index, n| {
            if index == first {
                Keep::New(&value)
            } else if n.eq_ignore_ascii_case(name) {
                Keep::Drop
            } else {
                Keep::Same
            }
        });
    }

    /// Appends one more value of `name`.
    pub fn add(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.changed = true;
        self.push(name, &value.into());
    }

    /// Removes every value of `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        if self.get(name).is_none() {
            return false;
        }
        self.changed = true;
        self.rebuild(|_, n| {
            if n.eq_ignore_ascii_case(name) {
                Keep::Drop
            } else {
                Keep::Same
            }
        });
        true
    }

    /// Rebuilds the buffers pair by pair, keeping, dropping or replacing each as `keep(index,
    /// name)` says (mutations that move bytes around are rare: rebuilding keeps the buffers
    /// free of gaps).
    fn rebuild<'v>(&mut self, mut keep: impl FnMut(usize, &str) -> Keep<'v>) {
        let mut rebuilt = Self::with_capacity(self.len(), self.names.len() + self.values.len());
        for (index, (name, value)) in self.iter().enumerate() {
            match keep(index, name) {
                Keep::Drop => {}
                Keep::Same => rebuilt.push(name, value),
                Keep::New(new) => rebuilt.push(name, new),
            }
        }
        rebuilt.changed = self.changed;
        *self = rebuilt;
    }

    /// Where pair `index`'s value is in `values`.
    fn value_range(&self, index: usize) -> (usize, usize) {
        let start = index
            .checked_sub(1)
            .map_or(0, |previous| self.ends[previous].1 as usize);
        (start, self.ends[index].1 as usize)
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        let mut starts = (0usize, 0usize);
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let pair = (
                &self.names[starts.0..name_end],
                &self.values[starts.1..value_end],
            );
            starts = (name_end, value_end);
            pair
        })
    }

    /// The map in the ABI's wire format (see [`crate::abi::encode_pairs`]).
    pub fn encode(&self) -> Vec<u8> {
        crate::abi::encode_pairs(self.iter().map(|(n, v)| (n.as_bytes(), v)))
    }

    /// The total size of names and values, to bound what a plugin may add.
    pub fn byte_size(&self) -> usize {
        self.names.len() + self.values.len()
    }
}

/// What [`HeaderMap::rebuild`] does with one pair.
enum Keep<'v> {
    Drop,
    Same,
    New(&'v [u8]),
}

/// A buffer offset as stored; header maps are bounded far below 4 GiB (Pingora's and the
/// plugins' header limits), so this saturates only for a map nothing would accept anyway.
fn offset(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Equal pairs in the same order; whether either map was changed does not matter.
impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        // The buffers have no gaps, so equal pairs mean equal buffers.
        self.ends == other.ends && self.names == other.names && self.values == other.values
    }
}

impl Eq for HeaderMap {}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn replace_keeps_the_first_position_and_drops_other_values() {
        let mut map = HeaderMap::from_pairs([("a", "1"), ("X-B", "2"), ("c", "3"), ("x-b", "4")]);
        map.replace("x-b", "new");
        assert_eq!(
            pairs(&map),
            vec![
                ("a".into(), b"1".to_vec()),
                ("x-b".into(), b"new".to_vec()),
                ("c".into(), b"3".to_vec())
            ]
        );
        assert_eq!(
            map,
            HeaderMap::from_pairs([("a", "1"), ("x-b", "new"), ("c", "3")])
        );
    }

    #[test]
    fn replacing_with_a_value_of_the_same_length_or_an_empty_one_works_in_place() {
        let mut map = HeaderMap::from_pairs([("a", "1"), ("b", "22"), ("c", "3")]);
        map.replace("b", "xy");
        assert_eq!(
            map,
            HeaderMap::from_pairs([("a", "1"), ("b", "xy"), ("c", "3")])
        );
        map.replace("b", "");
        assert_eq!(
            map,
            HeaderMap::from_pairs([("a", "1"), ("b", ""), ("c", "3")])
        );
        map.replace("b", "longer");
        assert_eq!(
            map,
            HeaderMap::from_pairs([("a", "1"), ("b", "longer"), ("c", "3")])
        );
        map.replace("new", "v");
        assert_eq!(map.get_str("new"), Some("v"));
        assert_eq!(map.len(), 4);
        assert_eq!(map.byte_size(), "abcnew".len() + "1longer3v".len());
    }

    #[test]
    fn names_are_case_insensitive_and_multi_valued() {
        let mut map = HeaderMap::new();
        map.add("Set-Cookie", "a=1");
        map.add("set-cookie", "b=2");
        assert_eq!(map.get_all("SET-COOKIE").count(), 2);
        assert!(map.remove("Set-Cookie"));
        assert!(map.is_empty());
        assert!(!map.remove("set-cookie"));
    }

    #[test]
    fn changes_are_tracked_without_a_copy() {
        let mut map = HeaderMap::from_pairs([(":path", "/"), ("x-a", "1")]);
        assert!(!map.is_changed(), "a map as built is unchanged");
        assert!(!map.remove("absent"));
        assert!(!map.is_changed(), "removing nothing changes nothing");
        let read = map.get("x-a").map(<[u8]>::to_vec);
        assert_eq!(read.as_deref(), Some(&b"1"[..]));
        assert!(!map.is_changed(), "reading changes nothing");
        map.replace("x-a", "2");
        assert!(map.is_changed());
        map.mark_unchanged();
        assert!(!map.is_changed());
        map.add("x-b", "3");
        assert!(map.is_changed());
        map.mark_unchanged();
        assert!(map.remove("x-b"));
        assert!(map.is_changed());
        assert_eq!(map, HeaderMap::from_pairs([(":path", "/"), ("x-a", "2")]));
    }

    #[test]
    fn encodes_like_the_abi_and_prints_readably() {
        let map = HeaderMap::from_pairs([("A", "1"), ("b", "")]);
        assert_eq!(
            map.encode(),
            crate::abi::encode_pairs([(&b"a"[..], &b"1"[..]), (&b"b"[..], &b""[..])])
        );
        assert_eq!(format!("{map:?}"), r#"[("a", "1"), ("b", "")]"#);
    }
}
