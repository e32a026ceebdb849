//! A SHA-256 hash tree over one batch of documents, so that one RFC 3161 request stamps them all.
//!
//! Each document contributes its *leaf digest*, the SHA-256 of its signature bytes. The tree
//! hashes a leaf as `SHA-256(0x00 ‖ leaf digest)` and an inner node as
//! `SHA-256(0x01 ‖ left ‖ right)`: the two prefixes keep a leaf from ever being taken for an inner
//! node (and the reverse), so no path can be forged from a subtree. At every level the nodes are
//! paired from the left; the last node of an odd level has no sibling and goes up unchanged, so
//! it adds no step to the paths below it. The root is what the time-stamping authority signs.
//!
//! A document keeps its [`Path`]: the siblings met from its leaf up to the root, each with the
//! side it stands on. [`Path::root_from`] walks it, so anyone holding the signature, the path and
//! the time-stamp token can recompute the root without the other documents of the batch.
//!
//! The tree is a pure function of the leaf digests in their order: the same batch always gives
//! the same root and paths.

use std::fmt;

use ring::digest;
use serde::{Deserialize, Serialize};

/// Length of every digest of the tree (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// The largest batch taken: far above what one sending relay gathers between two requests,
/// and small enough that a tree is a few tens of MiB at most.
pub const MAX_BATCH_LEAVES: usize = 1 << 20;

/// The longest path accepted when reading one back: enough for [`MAX_BATCH_LEAVES`] leaves.
pub const MAX_PATH_STEPS: usize = 20;

/// Prefix of a leaf's hash input.
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an inner node's hash input.
const NODE_PREFIX: u8 = 0x01;

/// Why a batch could not be built or a path does not lead to the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A tree needs at least one leaf.
    #[error("a batch needs at least one document")]
    Empty,
    /// More leaves than [`MAX_BATCH_LEAVES`].
    #[error("a batch of {leaves} documents is larger than the {MAX_BATCH_LEAVES} allowed")]
    TooLarge {
        /// How many were given.
        leaves: usize,
    },
    /// A path with more steps than [`MAX_PATH_STEPS`].
    #[error("a path of {steps} steps is longer than the {MAX_PATH_STEPS} allowed")]
    PathTooLong {
        /// How many it has.
        steps: usize,
    },
    /// Walking the path from the leaf gave another root than the one expected.
    #[error("the path from leaf {leaf} leads to root {computed}, not to {expected}")]
    RootMismatch {
        /// The document's leaf digest.
        leaf: Digest,
        /// The root the path leads to.
        computed: Digest,
        /// The root expected (the one time-stamped).
        expected: Digest,
    },
}

/// A SHA-256 value of the tree; written as 64 lowercase hex digits (in JSON too).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; DIGEST_LEN]);

impl Digest {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Digest {
        Digest(bytes)
    }

    /// Takes a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        <[u8; DIGEST_LEN]>::try_from(bytes).ok().map(Digest)
    }

    /// Reads 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Digest> {
        let mut out = [0u8; DIGEST_LEN];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Digest(out))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&text).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&text),
                &"64 hex digits (a SHA-256 value)",
            )
        })
    }
}

/// The leaf digest of a document: the SHA-256 of its signature bytes.
pub fn leaf_digest(signature: &[u8]) -> Digest {
    sha256(&[signature])
}

/// SHA-256 over the concatenation of `parts`.
fn sha256(parts: &[&[u8]]) -> Digest {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    Digest(out)
}

/// The tree's node over a leaf digest.
fn leaf_node(leaf: &Digest) -> Digest {
    sha256(&[&[LEAF_PREFIX], leaf.as_bytes()])
}

/// The tree's node over two children.
fn inner_node(left: &Digest, right: &Digest) -> Digest {
    sha256(&[&[NODE_PREFIX], left.as_bytes(), right.as_bytes()])
}

/// Which side of the node walked so far a sibling stands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The sibling is the left child: hash `0x01 ‖ sibling ‖ node`.
    Left,
    /// The sibling is the right child: hash `0x01 ‖ node ‖ sibling`.
    Right,
}

/// One step up the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Where the sibling stands.
    pub side: Side,
    /// The sibling's node value.
    pub sibling: Digest,
}

/// The siblings from a leaf up to the root, the leaf's first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Path {
    /// The steps, bottom up.
    pub steps: Vec<Step>,
}

impl Path {
    /// The root this path leads to from the document whose leaf digest is `leaf`.
    pub fn root_from(&self, leaf: &Digest) -> Result<Digest, BatchError> {
        if self.steps.len() > MAX_PATH_STEPS {
            return Err(BatchError::PathTooLong {
                steps: self.steps.len(),
            });
        }
        Ok(self
            .steps
            .iter()
            .fold(leaf_node(leaf), |node, step| match step.side {
                Side::Left => inner_node(&step.sibling, &node),
                Side::Right => inner_node(&node, &step.sibling),
            }))
    }

    /// The path as text, one step a line from the leaf up: `left <hex>` or `right <hex>`; what
    /// a shell loop reads to walk it with `openssl dgst` (docs/evidence.md).
    pub fn to_lines(&self) -> String {
        self.steps
            .iter()
            .map(|s| {
                let side = match s.side {
                    Side::Left => "left",
                    Side::Right => "right",
                };
                format!("{side} {}\n", s.sibling)
            })
            .collect()
    }

    /// Succeeds only when the path leads from `leaf` to `expected`.
    pub fn verify(&self, leaf: &Digest, expected: &Digest) -> Result<(), BatchError> {
        let computed = self.root_from(leaf)?;
        if computed == *expected {
            Ok(())
        } else {
            Err(BatchError::RootMismatch {
                leaf: *leaf,
                computed,
                expected: *expected,
            })
        }
    }
}

/// The whole tree of one batch, kept until every document has taken its path.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The node values level by level: the leaves' nodes first, the root alone last.
    levels: Vec<Vec<Digest>>,
}

impl Tree {
    /// Builds the tree over the leaf digests, in the order given (a document's index in
    /// `leaves` is its index for [`Tree::path`]).
    pub fn build(leaves: &[Digest]) -> Result<Tree, BatchError> {
        if leaves.is_empty() {
            return Err(BatchError::Empty);
        }
        if leaves.len() > MAX_BATCH_LEAVES {
            return Err(BatchError::TooLarge {
                leaves: leaves.len(),
            });
        }
        let mut levels = vec![leaves.iter().map(leaf_node).collect::<Vec<_>>()];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            // A pair gives its parent; a node alone (the last of an odd level) goes up as is.
            let above = below
                .chunks(2)
                .filter_map(|pair| pair.iter().copied().reduce(|l, r| inner_node(&l, &r)))
                .collect();
            levels.push(above);
        }
        Ok(Tree { levels })
    }

    /// The root: what the time-stamp's message imprint holds.
    pub fn root(&self) -> Digest {
        // `build` refuses an empty batch, so the top level holds exactly one node.
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or(Digest([0; DIGEST_LEN]))
    }

    /// How many documents the batch holds.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Always false: a tree has at least one leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path of the document at `index`, or None past the end of the batch.
    pub fn path(&self, index: usize) -> Option<Path> {
        if index >= self.len() {
            return None;
        }
        let mut steps = Vec::new();
        let mut at = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = at ^ 1;
            if let Some(node) = level.get(sibling) {
                steps.push(Step {
                    side: if sibling < at {
                        Side::Left
                    } else {
                        Side::Right
                    },
                    sibling: *node,
                });
            }
            at /= 2;
        }
        Some(Path { steps })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n)
            .map(|i| leaf_digest(format!("signature {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn batch_of_one_is_the_leaf_node() {
        let l = leaves(1);
        let tree = Tree::build(&l).unwrap();
        assert_eq!(tree.root(), leaf_node(&l[0]));
        let path = tree.path(0).unwrap();
        assert!(path.steps.is_empty());
        path.verify(&l[0], &tree.root()).unwrap();
        assert!(tree.path(1).is_none());
    }

    #[test]
    fn empty_batch_is_refused() {
        assert_eq!(Tree::build(&[]).unwrap_err(), BatchError::Empty);
    }

    #[test]
    fn three_leaves_by_hand() {
        let l = leaves(3);
        let (a, b, c) = (leaf_node(&l[0]), leaf_node(&l[1]), leaf_node(&l[2]));
        let root = inner_node(&inner_node(&a, &b), &c);
        let tree = Tree::build(&l).unwrap();
        assert_eq!(tree.root(), root);
        // The odd leaf goes up unchanged: its path has only the step at the top.
        assert_eq!(
            tree.path(2).unwrap().steps,
            vec![Step {
                side: Side::Left,
                sibling: inner_node(&a, &b)
            }]
        );
        assert_eq!(
            tree.path(1).unwrap().steps,
            vec![
                Step {
                    side: Side::Left,
                    sibling: a
                },
                Step {
                    side: Side::Right,
                    sibling: c
                }
            ]
        );
    }

    #[test]
    fn a_leaf_is_not_an_inner_node() {
        // Two leaves whose digests are the two children of the root do not give the same root
        // as the tree of two leaves: the prefixes differ.
        let l = leaves(2);
        let tree = Tree::build(&l).unwrap();
        let forged = Tree::build(&[leaf_node(&l[0]), leaf_node(&l[1])]).unwrap();
        assert_ne!(tree.root(), forged.root());
        assert_ne!(
            tree.root(),
            inner_node(&leaf_node(&leaf_node(&l[0])), &leaf_node(&leaf_node(&l[1])))
        );
    }

    #[test]
    fn path_serializes_as_sides_and_hex() {
        let l = leaves(2);
        let tree = Tree::build(&l).unwrap();
        let json = serde_json::to_string(&tree.path(0).unwrap()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"[{{"side":"right","sibling":"{}"}}]"#,
                leaf_node(&l[1]).to_hex()
            )
        );
        assert_eq!(
            tree.path(1).unwrap().to_lines(),
            format!("left {}\n", leaf_node(&l[0]))
        );
        let back: Path = serde_json::from_str(&json).unwrap();
        back.verify(&l[0], &tree.root()).unwrap();
        assert!(serde_json::from_str::<Path>(r#"[{"side":"right","sibling":"00"}]"#).is_err());
    }

    #[test]
    fn too_long_a_path_is_refused() {
        let step = Step {
            side: Side::Left,
            sibling: Digest([0; DIGEST_LEN]),
        };
        let path = Path {
            steps: vec![step; MAX_PATH_STEPS + 1],
        };
        assert_eq!(
            path.root_from(&Digest([0; DIGEST_LEN])).unwrap_err(),
            BatchError::PathTooLong {
                steps: MAX_PATH_STEPS + 1
            }
        );
    }

    proptest! {
        #[test]
        fn every_path_leads_to_the_root(n in 1usize..300) {
            let l = leaves(n);
            let tree = Tree::build(&l).unwrap();
            prop_assert_eq!(tree.len(), n);
            prop_assert_eq!(Tree::build(&l).unwrap().root(), tree.root());
            for (i, leaf) in l.iter().enumerate() {
                let path = tree.path(i).unwrap();
                prop_assert!(path.steps.len() <= MAX_PATH_STEPS);
                prop_assert!(path.verify(leaf, &tree.root()).is_ok());
            }
        }

        #[test]
        fn a_changed_sibling_side_or_leaf_fails(
            n in 2usize..200,
            pick in any::<prop::sample::Index>(),
            step_pick in any::<prop::sample::Index>(),
            bit in 0u8..8,
            byte in 0usize..DIGEST_LEN,
        ) {
            let l = leaves(n);
            let tree = Tree::build(&l).unwrap();
            let i = pick.index(n);
            let path = tree.path(i).unwrap();
            let s = step_pick.index(path.steps.len());

            let mut sibling = path.clone();
            sibling.steps[s].sibling.0[byte] ^= 1 << bit;
            let err = sibling.verify(&l[i], &tree.root()).unwrap_err();
            let mismatch = matches!(err, BatchError::RootMismatch { .. });
            prop_assert!(mismatch);

            let mut side = path.clone();
            side.steps[s].side = match side.steps[s].side {
                Side::Left => Side::Right,
                Side::Right => Side::Left,
            };
            prop_assert!(side.verify(&l[i], &tree.root()).is_err());

            let mut leaf = l[i];
            leaf.0[byte] ^= 1 << bit;
            prop_assert!(path.verify(&leaf, &tree.root()).is_err());

            // Another document's leaf with this document's path.
            let other = (i + 1) % n;
            prop_assert!(path.verify(&l[other], &tree.root()).is_err());
        }
    }
}
