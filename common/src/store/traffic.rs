//! `w/<minute>`: the node's traffic in one minute (for the console's charts), keyed by the
//! minute since the Unix epoch (big-endian, so keys sort by time). The store keeps the bytes;
//! `lienthong_node::traffic` says what they mean and prunes what is older than a day.

use super::*;

const PREFIX: &[u8] = b"w/";

fn minute_key(minute: u64) -> Vec<u8> {
    key(PREFIX, &[&minute.to_be_bytes()])
}

impl Store {
    /// Writes one minute's traffic record (not durable until the next commit: losing the last
    /// minutes of a chart in a crash is acceptable, and costs no flush).
    pub fn put_traffic_minute(&self, minute: u64, record: &[u8]) -> Result<(), StoreError> {
        self.tree()
            .insert(minute_key(minute), record)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The traffic records from `minute` on, oldest first, as (minute, record).
    pub fn traffic_since(&self, minute: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let end = key(b"w0", &[]);
        let mut out = Vec::new();
        for kv in self.tree().range(minute_key(minute)..end) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let Ok(bytes) = <[u8; 8]>::try_from(&k[PREFIX.len()..]) else {
                continue;
            };
            out.push((u64::from_be_bytes(bytes), v.to_vec()));
        }
        Ok(out)
    }

    /// Removes the traffic records older than `minute`; returns how many went.
    pub fn prune_traffic_before(&self, minute: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.tree().range(key(PREFIX, &[])..minute_key(minute)) {
            let (k, _) = kv.map_err(|e| self.err(e))?;
            self.tree().remove(k).map_err(|e| self.err(e))?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn minutes_read_back_in_order_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for m in [300u64, 100, 256, 200] {
            s.put_traffic_minute(m, format!("m{m}").as_bytes()).unwrap();
        }
        // Neighbouring keyspaces are not read as traffic.
        s.put_raw(b"wx", b"other").unwrap();
        s.put_raw(b"v/n\0\0", b"other").unwrap();
        let got = s.traffic_since(150).unwrap();
        assert_eq!(
            got,
            vec![
                (200, b"m200".to_vec()),
                (256, b"m256".to_vec()),
                (300, b"m300".to_vec())
            ]
        );
        assert_eq!(s.prune_traffic_before(256).unwrap(), 2);
        assert_eq!(s.traffic_since(0).unwrap().len(), 2);
        assert_eq!(s.get_raw(b"wx").unwrap().as_deref(), Some(&b"other"[..]));
    }
}
