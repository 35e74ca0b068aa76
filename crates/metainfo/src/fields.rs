//! Typed reads of fields from a decoded bencode dictionary, with errors that name the field.

use bencode::Value;

use crate::error::{MetainfoError, Problem};

/// A dictionary being read, with the dotted name of where it sits (e.g. `info.files[3]`).
pub(crate) struct Dict<'v, 'a> {
    pub name: String,
    pub entries: &'v [(&'a [u8], Value<'a>)],
}

impl<'v, 'a> Dict<'v, 'a> {
    /// Views `value` as the dictionary called `name`.
    pub fn new(name: impl Into<String>, value: &'v Value<'a>) -> Result<Self, MetainfoError> {
        let name = name.into();
        match value.as_dict() {
            Some(entries) => Ok(Dict { name, entries }),
            None => Err(MetainfoError::field(
                name,
                Problem::WrongType {
                    expected: "dictionary",
                    found: value.kind_name(),
                },
            )),
        }
    }

    /// Refuses a dictionary that has the same key twice.
    pub fn unique_keys(&self) -> Result<(), MetainfoError> {
        let mut keys: Vec<&[u8]> = self.entries.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        match keys.windows(2).find(|w| w[0] == w[1]) {
            Some(w) => Err(MetainfoError::field(
                self.name.clone(),
                Problem::DuplicateKey(String::from_utf8_lossy(w[0]).into_owned()),
            )),
            None => Ok(()),
        }
    }

    /// The dotted name of `key` in this dictionary.
    pub fn field(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.name)
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'v Value<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value<'_>) -> MetainfoError {
        MetainfoError::field(
            self.field(key),
            Problem::WrongType {
                expected,
                found: v.kind_name(),
            },
        )
    }

    /// The value of a required key.
    pub fn require(&self, key: &str) -> Result<&'v Value<'a>, MetainfoError> {
        self.get(key)
            .ok_or_else(|| MetainfoError::field(self.field(key), Problem::Missing))
    }

    /// A required integer.
    pub fn int(&self, key: &str) -> Result<i64, MetainfoError> {
        let v = self.require(key)?;
        v.as_int().ok_or_else(|| self.wrong(key, "integer", v))
    }

    /// A required byte string.
    pub fn bytes(&self, key: &str) -> Result<&'a [u8], MetainfoError> {
        let v = self.require(key)?;
        v.as_bytes()
            .ok_or_else(|| self.wrong(key, "byte string", v))
    }

    /// A required list.
    pub fn list(&self, key: &str) -> Result<&'v [Value<'a>], MetainfoError> {
        let v = self.require(key)?;
        v.as_list().ok_or_else(|| self.wrong(key, "list", v))
    }

    /// An optional string, lossily converted; absent or of another type gives `None`.
    pub fn lenient_str(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// An optional integer; absent or of another type gives `None`.
    pub fn lenient_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_int)
    }
}
