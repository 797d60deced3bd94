//! An ordered, multi-valued header map: the host's view of request and response headers.

/// Header names (lower case, pseudo-headers such as `:path` included) with their values, in
/// order. Values are bytes: HTTP allows non-UTF-8 values, and plugins decide how to read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pairs: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of the given pairs; names are lower-cased.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_ascii_lowercase(), v.as_ref().to_vec()))
                .collect(),
        }
    }

    /// The number of pairs (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name`, when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `name` to a single value, in place of the first existing one (keeps its position).
    pub fn replace(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self
            .pairs
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.pairs[first].1 = value;
                let mut index = 0;
                self.pairs.retain(|(n, _)| {
                    let keep = index <= first || !n.eq_ignore_ascii_case(name);
                    index += 1;
                    keep
                });
            }
            None => self.pairs.push((name.to_ascii_lowercase(), value)),
        }
    }

    /// Appends one more value of `name`.
    pub fn add(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.pairs.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Removes every value of `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.pairs.len();
        self.pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before != self.pairs.len()
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The map in the ABI's wire format (see [`crate::abi::encode_pairs`]).
    pub fn encode(&self) -> Vec<u8> {
        crate::abi::encode_pairs(self.iter().map(|(n, v)| (n.as_bytes(), v)))
    }

    /// The total size of names and values, to bound what a plugin may add.
    pub fn byte_size(&self) -> usize {
        self.pairs.iter().map(|(n, v)| n.len() + v.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_the_first_position_and_drops_other_values() {
        let mut map = HeaderMap::from_pairs([("a", "1"), ("X-B", "2"), ("c", "3"), ("x-b", "4")]);
        map.replace("x-b", "new");
        let pairs: Vec<_> = map
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), b"1".to_vec()),
                ("x-b".into(), b"new".to_vec()),
                ("c".into(), b"3".to_vec())
            ]
        );
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
}
