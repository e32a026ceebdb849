//! Keyspace `g/`, `G/` and `N/`: register entries and their numbering.

use super::*;

impl Store {
    /// Numbers an entry in a register book exactly once: if `entry_key` has no number in
    /// `scope` yet, the book's next number (1, 2, …) is assigned and the entry written,
    /// atomically; otherwise nothing changes. Returns the book and number the key has, and
    /// whether it was assigned now.
    pub fn number_once(
        &self,
        scope: &str,
        book: &str,
        entry_key: &str,
        entry: impl Fn(u64) -> Vec<u8>,
    ) -> Result<(String, u64, bool), StoreError> {
        let ikey = key(b"G/", &[scope.as_bytes(), entry_key.as_bytes()]);
        let nkey = key(b"N/", &[book.as_bytes()]);
        let res = self.tree().transaction(|t| {
            if let Some(v) = t.get(&ikey)? {
                return Ok(split_numbered(&v));
            }
            let last = t
                .get(&nkey)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let n = last + 1;
            let mut idx = book.as_bytes().to_vec();
            idx.push(0);
            idx.extend_from_slice(&n.to_be_bytes());
            t.insert(ikey.as_slice(), idx)?;
            t.insert(nkey.as_slice(), &n.to_be_bytes()[..])?;
            t.insert(key(b"g/", &[book.as_bytes(), &n.to_be_bytes()]), entry(n))?;
            Ok::<_, ConflictableTransactionError<()>>((book.to_owned(), n, true))
        });
        res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))
    }

    /// The book and number `entry_key` got in `scope`, if any.
    pub fn numbered(
        &self,
        scope: &str,
        entry_key: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let ikey = key(b"G/", &[scope.as_bytes(), entry_key.as_bytes()]);
        Ok(self.get_raw(&ikey)?.map(|v| {
            let (b, n, _) = split_numbered(&v);
            (b, n)
        }))
    }

    /// Entry `number` of a book.
    pub fn book_entry(&self, book: &str, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_raw(&key(b"g/", &[book.as_bytes(), &number.to_be_bytes()]))
    }

    /// Every entry of a book, by number.
    pub fn book_entries(&self, book: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = key(b"g/", &[book.as_bytes(), b""]);
        let mut out = Vec::new();
        for (k, v) in self.scan_raw(&prefix)? {
            if let Ok(n) = <[u8; 8]>::try_from(&k[prefix.len()..]) {
                out.push((u64::from_be_bytes(n), v));
            }
        }
        Ok(out)
    }
}

fn split_numbered(v: &[u8]) -> (String, u64, bool) {
    let split = v.len().saturating_sub(9);
    let book = String::from_utf8_lossy(&v[..split]).into_owned();
    let n = v
        .get(split + 1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    (book, n, false)
}
