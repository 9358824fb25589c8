//! A list of strings kept one after another in one text: what the tracker keeps its
//! thread ids and users in, so that reading the lists back (the analysis, the report, a
//! binding handing them to another runtime) walks one buffer, not one heap allocation
//! per string.

/// Strings in the order pushed, stored end to end in one `String`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextList {
    text: String,
    /// Where each string ends in `text`, in bytes; each starts where the one before ends.
    ends: Vec<usize>,
}

impl TextList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many strings the list holds (not their length in bytes).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list holds no strings (an empty string pushed still counts as one).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Adds `s` at the end; its position is the length before the call.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }

    /// The string at `position`, or `None` past the end.
    pub fn get(&self, position: usize) -> Option<&str> {
        let end = *self.ends.get(position)?;
        self.text.get(self.start(position)..end)
    }

    /// Every string, in order.
    pub fn iter(&self) -> Pieces<'_> {
        self.iter_from(0)
    }

    /// The strings from `position` on, in order (none past the end).
    pub fn iter_from(&self, position: usize) -> Pieces<'_> {
        Pieces {
            text: &self.text,
            start: self.start(position),
            ends: self.ends.get(position..).unwrap_or_default().iter(),
        }
    }

    /// Where the string at `position` starts (the text's end past the last one).
    fn start(&self, position: usize) -> usize {
        match position.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(self.text.len()),
            None => 0,
        }
    }
}

/// Strings of a `TextList` in order, from some position on.
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    text: &'a str,
    start: usize,
    ends: std::slice::Iter<'a, usize>,
}

impl<'a> Pieces<'a> {
    /// The strings not yet taken, one after another in one text: for handing many
    /// strings over in one piece.
    pub fn as_str(&self) -> &'a str {
        self.text.get(self.start..).unwrap_or_default()
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.ends.next()?;
        let piece = self.text.get(self.start..end).unwrap_or_default();
        self.start = end;
        Some(piece)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Pieces<'_> {
    fn len(&self) -> usize {
        self.ends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> TextList {
        let mut l = TextList::new();
        for s in items {
            l.push(s);
        }
        l
    }

    #[test]
    fn gives_back_what_was_pushed() {
        let items = ["thread_a", "", "é🎉", "x"];
        let l = list(&items);
        assert_eq!(l.len(), 4);
        assert!(!l.is_empty());
        assert_eq!(l.iter().collect::<Vec<_>>(), items);
        assert_eq!(l.iter().len(), 4);
        assert_eq!(l.get(2), Some("é🎉"));
        assert_eq!(l.get(4), None);
        assert!(TextList::new().is_empty());
        assert_eq!(TextList::new().iter().count(), 0);
    }

    #[test]
    fn pieces_from_a_position() {
        let l = list(&["ab", "", "cde", "é"]);
        let mut rest = l.iter_from(1);
        assert_eq!((rest.as_str(), rest.len()), ("cdeé", 3));
        assert_eq!(rest.next(), Some(""));
        assert_eq!(rest.next(), Some("cde"));
        assert_eq!((rest.as_str(), rest.len()), ("é", 1));
        assert_eq!(rest.collect::<Vec<_>>(), ["é"]);
        assert_eq!(l.iter_from(0).as_str(), "abcdeé");
        for past in [4, 5, usize::MAX] {
            let rest = l.iter_from(past);
            assert_eq!((rest.as_str(), rest.count()), ("", 0));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_strings_round_trip(items in proptest::collection::vec(".{0,8}", 0..20), from in 0usize..25) {
            let refs: Vec<&str> = items.iter().map(String::as_str).collect();
            let l = list(&refs);
            proptest::prop_assert_eq!(l.iter().collect::<Vec<_>>(), refs.clone());
            proptest::prop_assert_eq!(l.len(), refs.len());
            for (i, s) in refs.iter().enumerate() {
                proptest::prop_assert_eq!(l.get(i), Some(*s));
            }
            proptest::prop_assert_eq!(l.get(refs.len()), None);
            let pieces = l.iter_from(from);
            let rest = refs.get(from..).unwrap_or_default();
            proptest::prop_assert_eq!(pieces.as_str(), rest.concat());
            proptest::prop_assert_eq!(pieces.len(), rest.len());
            proptest::prop_assert_eq!(pieces.collect::<Vec<_>>(), rest);
        }
    }
}
