//! The routing table: where an agency code goes from this node, and who may link to it.
//!
//! Order of precedence for a destination:
//! 1. served locally (this node's agency and `[[local]]` agencies);
//! 2. announced by a child (exact code in the set the child's Hello listed);
//! 3. a configured `[[route]]` whose destination contains it (most specific first);
//! 4. a known child (configured, or one that has linked) whose code contains it;
//! 5. inside this node's own subtree but unknown: the child the code hierarchy puts on the way
//!    to it, which may not have linked yet (the document waits in its queue; see
//!    `[link] offline_child_max_age_hours`), or no route when waiting is turned off;
//! 6. otherwise the parent; on the root, no route.
//!
//! Between 2 and 3: an agency the parent said has moved (a newer claim for it came through
//! another of the parent's children) goes to the parent.
//!
//! Claims carry a sequence (the time the serving node linked to its current parent): of two
//! children announcing one agency, the newer claim wins and the older child is told
//! ([`Announced::superseded`]), so a moved office is routed along its new path and the old one
//! forgets it. Claims without a sequence (peers of an older version) keep the old behaviour.

use std::collections::{BTreeMap, BTreeSet};

use lienthong_common::agency::AgencyCode;

/// Where a destination goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Delivered on this node.
    Local,
    /// Sent to this neighbour (parent or child).
    Neighbour(AgencyCode),
    /// Nowhere: answered with a rejection.
    NoRoute,
}

/// The routing state of a node.
#[derive(Debug, Clone)]
pub struct RouteTable {
    me: AgencyCode,
    local: BTreeSet<AgencyCode>,
    parent: Option<AgencyCode>,
    configured_children: BTreeSet<AgencyCode>,
    routes: Vec<(AgencyCode, AgencyCode)>,
    announced: BTreeMap<AgencyCode, BTreeSet<AgencyCode>>,
    /// The sequence of each announced agency, per child (absent: none given).
    seqs: BTreeMap<AgencyCode, BTreeMap<AgencyCode, i64>>,
    /// Agencies the parent said are reached another way, with the winning sequence.
    moved: BTreeMap<AgencyCode, i64>,
    /// Agencies each child lost to a newer claim through another child: documents for them
    /// that the child sends back are re-routed, not refused.
    moved_away: BTreeMap<AgencyCode, BTreeSet<AgencyCode>>,
    wait_for_offline: bool,
}

/// What an announcement changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Announced {
    /// The table changed.
    pub changed: bool,
    /// Claims that lost to a newer one: (the child to tell, the agency, the winning sequence).
    /// The child may be the announcing one (its claim was already out of date).
    pub superseded: Vec<(AgencyCode, AgencyCode, i64)>,
}

impl RouteTable {
    /// A table for node `me`.
    pub fn new(
        me: AgencyCode,
        local: impl IntoIterator<Item = AgencyCode>,
        parent: Option<AgencyCode>,
        configured_children: impl IntoIterator<Item = AgencyCode>,
        mut routes: Vec<(AgencyCode, AgencyCode)>,
    ) -> Self {
        // Most specific destination first: deeper codes before their ancestors.
        routes.sort_by_key(|(d, _)| std::cmp::Reverse(d.ancestors().len()));
        let mut local: BTreeSet<AgencyCode> = local.into_iter().collect();
        local.insert(me.clone());
        Self {
            me,
            local,
            parent,
            configured_children: configured_children.into_iter().collect(),
            routes,
            announced: BTreeMap::new(),
            seqs: BTreeMap::new(),
            moved: BTreeMap::new(),
            moved_away: BTreeMap::new(),
            wait_for_offline: true,
        }
    }

    /// Whether a destination below this node that no known child covers waits for the child
    /// the hierarchy puts on its way (true, the default) or has no route (false).
    pub fn wait_for_offline_children(mut self, wait: bool) -> Self {
        self.wait_for_offline = wait;
        self
    }

    /// The child of this node that the code hierarchy puts on the way to `dest`, if `dest`
    /// lies strictly below this node.
    pub fn hierarchy_child(&self, dest: &AgencyCode) -> Option<AgencyCode> {
        std::iter::once(dest.clone())
            .chain(dest.ancestors())
            .find(|a| a.administrative_parent().as_ref() == Some(&self.me))
    }

    /// This node's agency.
    pub fn me(&self) -> &AgencyCode {
        &self.me
    }

    /// The parent, if any.
    pub fn parent(&self) -> Option<&AgencyCode> {
        self.parent.as_ref()
    }

    /// Agencies served on this node.
    pub fn local(&self) -> &BTreeSet<AgencyCode> {
        &self.local
    }

    /// Records what a child announced, without sequences. Returns true if the table changed.
    pub fn announce(&mut self, child: AgencyCode, serves: BTreeSet<AgencyCode>) -> bool {
        self.announce_claims(child, serves, &BTreeMap::new())
            .changed
    }

    /// Records what a child announced, with the sequence of each claim (0 or absent: none).
    /// A claim older than another child's, or than what the parent said moved, is left out;
    /// a newer one takes the agency from the other child.
    pub fn announce_claims(
        &mut self,
        child: AgencyCode,
        serves: BTreeSet<AgencyCode>,
        seqs: &BTreeMap<AgencyCode, i64>,
    ) -> Announced {
        let mut out = Announced::default();
        let mut set = BTreeSet::new();
        let mut kept = BTreeMap::new();
        for a in serves {
            let s = seqs.get(&a).copied().unwrap_or(0);
            if let Some(&m) = self.moved.get(&a) {
                if s > m {
                    self.moved.remove(&a);
                    out.changed = true;
                } else if s > 0 {
                    out.superseded.push((child.clone(), a, m));
                    continue;
                }
            }
            let mut loses = None;
            let mut takes_from = Vec::new();
            for (other, others) in &self.announced {
                if other == &child || !others.contains(&a) {
                    continue;
                }
                let os = self.seq_of(other, &a);
                if s > 0 && os > 0 {
                    if s > os {
                        takes_from.push(other.clone());
                    } else if os > s {
                        loses = Some(os);
                    }
                }
            }
            if let Some(os) = loses {
                out.superseded.push((child.clone(), a, os));
                continue;
            }
            for other in takes_from {
                self.take_from(&other, &a);
                out.changed = true;
                out.superseded.push((other, a.clone(), s));
            }
            if s > 0 {
                kept.insert(a.clone(), s);
            }
            set.insert(a);
        }
        for (loser, a, _) in &out.superseded {
            self.moved_away
                .entry(loser.clone())
                .or_default()
                .insert(a.clone());
        }
        if let Some(away) = self.moved_away.get_mut(&child) {
            away.retain(|a| !set.contains(a));
        }
        if self.announced.get(&child) != Some(&set) || self.seqs.get(&child) != Some(&kept) {
            out.changed = true;
        }
        self.announced.insert(child.clone(), set);
        self.seqs.insert(child, kept);
        out
    }

    /// Removes `agency` from what `child` announced.
    fn take_from(&mut self, child: &AgencyCode, agency: &AgencyCode) {
        if let Some(set) = self.announced.get_mut(child) {
            set.remove(agency);
        }
        if let Some(m) = self.seqs.get_mut(child) {
            m.remove(agency);
        }
    }

    fn seq_of(&self, child: &AgencyCode, agency: &AgencyCode) -> i64 {
        self.seqs
            .get(child)
            .and_then(|m| m.get(agency))
            .copied()
            .unwrap_or(0)
    }

    /// The parent says `agency` is now reached another way, by a claim of sequence `seq`: it
    /// goes to the parent from now on, and the children that announced it with an older claim
    /// lose it. Returns those children (to tell in turn), and whether anything changed.
    pub fn mark_moved(&mut self, agency: &AgencyCode, seq: i64) -> (Vec<AgencyCode>, bool) {
        if self.local.contains(agency) {
            return (Vec::new(), false);
        }
        let mut changed = self.moved.get(agency).is_none_or(|&m| m < seq);
        if changed {
            self.moved.insert(agency.clone(), seq);
        }
        let losers: Vec<AgencyCode> = self
            .announced
            .iter()
            .filter(|(c, set)| set.contains(agency) && self.seq_of(c, agency) < seq)
            .map(|(c, _)| c.clone())
            .collect();
        for c in &losers {
            self.take_from(c, agency);
            changed = true;
        }
        (losers, changed)
    }

    /// The sequences `child` gave for its claims.
    pub fn claims_of(&self, child: &AgencyCode) -> BTreeMap<AgencyCode, i64> {
        self.seqs.get(child).cloned().unwrap_or_default()
    }

    /// Forgets everything `child` announced. Returns true if it had announced anything.
    pub fn forget(&mut self, child: &AgencyCode) -> bool {
        self.seqs.remove(child);
        self.moved_away.remove(child);
        self.announced.remove(child).is_some()
    }

    /// Whether `agency` moved away from `child` (a newer claim came through another child).
    pub fn moved_away_from(&self, child: &AgencyCode, agency: &AgencyCode) -> bool {
        self.moved_away
            .get(child)
            .is_some_and(|set| set.contains(agency))
    }

    /// Agencies the parent said moved, with the winning sequence.
    pub fn moved(&self) -> &BTreeMap<AgencyCode, i64> {
        &self.moved
    }

    /// The sequence of each claim this node makes upward: its local agencies at `local_seq`,
    /// and each announced agency at the sequence its child gave (0: none).
    pub fn claims(&self, local_seq: i64) -> BTreeMap<AgencyCode, i64> {
        let mut out: BTreeMap<AgencyCode, i64> =
            self.local.iter().map(|a| (a.clone(), local_seq)).collect();
        for (child, set) in &self.announced {
            for a in set {
                let s = self.seq_of(child, a);
                let e = out.entry(a.clone()).or_insert(s);
                *e = (*e).max(s);
            }
        }
        out
    }

    /// What each child announced.
    pub fn announcements(&self) -> &BTreeMap<AgencyCode, BTreeSet<AgencyCode>> {
        &self.announced
    }

    /// Everything reachable through this node, for its own Hello upward.
    pub fn serves(&self) -> BTreeSet<AgencyCode> {
        let mut s = self.local.clone();
        for set in self.announced.values() {
            s.extend(set.iter().cloned());
        }
        s
    }

    fn known_children(&self) -> impl Iterator<Item = &AgencyCode> {
        self.configured_children.iter().chain(self.announced.keys())
    }

    /// Where `dest` goes from here.
    pub fn next_hop(&self, dest: &AgencyCode) -> NextHop {
        if self.local.contains(dest) {
            return NextHop::Local;
        }
        if let Some((child, _)) = self
            .announced
            .iter()
            .filter(|(_, set)| set.contains(dest))
            .min_by_key(|(c, _)| std::cmp::Reverse(self.seq_of(c, dest)))
        {
            return NextHop::Neighbour(child.clone());
        }
        if self.moved.contains_key(dest) {
            return match &self.parent {
                Some(p) => NextHop::Neighbour(p.clone()),
                None => NextHop::NoRoute,
            };
        }
        if let Some((_, via)) = self.routes.iter().find(|(d, _)| dest.is_within(d)) {
            return NextHop::Neighbour(via.clone());
        }
        if let Some(child) = self.known_children().find(|c| dest.is_within(c)) {
            return NextHop::Neighbour(child.clone());
        }
        if dest.is_within(&self.me) {
            return match self.hierarchy_child(dest) {
                Some(child) if self.wait_for_offline => NextHop::Neighbour(child),
                _ => NextHop::NoRoute,
            };
        }
        match &self.parent {
            Some(p) => NextHop::Neighbour(p.clone()),
            None => NextHop::NoRoute,
        }
    }

    /// Whether a node whose certificate names `child` may link to this node as a child: the
    /// hierarchy makes it one, `[[child]]` lists it, or this is the root and it is a level-1
    /// body (or another code with no administrative parent).
    pub fn accepts_child(&self, child: &AgencyCode) -> bool {
        if child == &self.me || Some(child) == self.parent.as_ref() {
            return false;
        }
        if self.configured_children.contains(child) {
            return true;
        }
        match child.administrative_parent() {
            Some(p) => p == self.me,
            None => self.parent.is_none(),
        }
    }

    /// Whether documents from `sender` may arrive through `child`: the sender lies in what the
    /// child announced or in its code subtree.
    pub fn child_may_originate(&self, child: &AgencyCode, sender: &AgencyCode) -> bool {
        sender.is_within(child)
            || self
                .announced
                .get(child)
                .is_some_and(|set| set.contains(sender))
            || self
                .routes
                .iter()
                .any(|(d, via)| via == child && sender.is_within(d))
    }

    /// Whether a child may announce `code`: inside its code subtree, or inside a configured
    /// route through it. (A `[[child]]` listed for this node is not announceable by another
    /// child: that would let one child capture another's traffic.)
    pub fn child_may_serve(&self, child: &AgencyCode, code: &AgencyCode) -> bool {
        code.is_within(child)
            || self
                .routes
                .iter()
                .any(|(d, via)| via == child && code.is_within(d))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn c(s: &str) -> AgencyCode {
        AgencyCode::parse(s).unwrap()
    }

    fn province() -> RouteTable {
        RouteTable::new(c("000.00.00.H53"), [], Some(c("000.00.00.G22")), [], vec![])
    }

    #[test]
    fn hierarchy_and_announcements() {
        let mut t = province();
        assert_eq!(t.next_hop(&c("000.00.00.H53")), NextHop::Local);
        assert_eq!(
            t.next_hop(&c("000.00.00.H49")),
            NextHop::Neighbour(c("000.00.00.G22"))
        );
        // Own subtree, nobody announced it: it waits for the district the hierarchy puts on
        // the way (sending it up would loop back); with waiting turned off, no route.
        assert_eq!(
            t.next_hop(&c("000.21.31.H53")),
            NextHop::Neighbour(c("000.00.31.H53"))
        );
        assert_eq!(
            t.clone()
                .wait_for_offline_children(false)
                .next_hop(&c("000.21.31.H53")),
            NextHop::NoRoute
        );
        t.announce(
            c("000.00.31.H53"),
            [c("000.00.31.H53"), c("000.21.31.H53")].into(),
        );
        assert_eq!(
            t.next_hop(&c("000.21.31.H53")),
            NextHop::Neighbour(c("000.00.31.H53"))
        );
        // Known child, code below it but not announced: hierarchy default.
        assert_eq!(
            t.next_hop(&c("000.22.31.H53")),
            NextHop::Neighbour(c("000.00.31.H53"))
        );
        assert!(t.serves().contains(&c("000.21.31.H53")));
        assert!(!t.announce(
            c("000.00.31.H53"),
            [c("000.00.31.H53"), c("000.21.31.H53")].into()
        ));
    }

    #[test]
    fn child_acceptance() {
        let t = province();
        assert!(t.accepts_child(&c("000.00.31.H53")));
        assert!(!t.accepts_child(&c("000.21.31.H53")));
        assert!(!t.accepts_child(&c("000.00.31.H49")));
        assert!(!t.accepts_child(&c("000.00.00.G22")));
        let root = RouteTable::new(c("000.00.00.G22"), [], None, [], vec![]);
        assert!(root.accepts_child(&c("000.00.00.H53")));
        assert!(!root.accepts_child(&c("000.00.31.H53")));
        // Three tiers: a commune configured directly under its province.
        let t3 = RouteTable::new(
            c("000.00.00.H53"),
            [],
            Some(c("000.00.00.G22")),
            [c("000.21.31.H53")],
            vec![],
        );
        assert!(t3.accepts_child(&c("000.21.31.H53")));
        assert_eq!(
            t3.next_hop(&c("000.21.31.H53")),
            NextHop::Neighbour(c("000.21.31.H53"))
        );
    }

    #[test]
    fn senders_must_lie_in_the_child_subtree() {
        let mut t = province();
        t.announce(
            c("000.00.31.H53"),
            [c("000.00.31.H53"), c("000.21.31.H53")].into(),
        );
        assert!(t.child_may_originate(&c("000.00.31.H53"), &c("000.21.31.H53")));
        assert!(!t.child_may_originate(&c("000.00.31.H53"), &c("000.21.32.H53")));
        assert!(!t.child_may_originate(&c("000.00.31.H53"), &c("000.00.00.H53")));
        assert!(!t.child_may_serve(&c("000.00.31.H53"), &c("000.00.00.G14")));
        // A configured child cannot be announced by another child.
        let t3 = RouteTable::new(c("000.00.00.H53"), [], None, [c("000.21.31.H53")], vec![]);
        assert!(!t3.child_may_serve(&c("000.00.32.H53"), &c("000.21.31.H53")));
        assert!(t3.child_may_serve(&c("000.21.31.H53"), &c("000.21.31.H53")));
    }

    #[test]
    fn configured_routes_win_over_the_hierarchy() {
        let t = RouteTable::new(
            c("000.00.00.H53"),
            [],
            Some(c("000.00.00.G22")),
            [c("000.00.31.H53")],
            vec![(c("000.00.00.H49"), c("000.00.31.H53"))],
        );
        assert_eq!(
            t.next_hop(&c("000.05.00.H49")),
            NextHop::Neighbour(c("000.00.31.H53"))
        );
    }

    #[test]
    fn a_newer_claim_moves_an_agency_and_the_old_child_is_told() {
        let mut t = province();
        let (a, b, commune) = (c("000.00.31.H53"), c("000.00.32.H53"), c("000.21.31.H53"));
        let seqs = |s: i64| BTreeMap::from([(commune.clone(), s)]);
        let r = t.announce_claims(a.clone(), BTreeSet::from([commune.clone()]), &seqs(100));
        assert!(r.changed && r.superseded.is_empty());
        assert_eq!(t.next_hop(&commune), NextHop::Neighbour(a.clone()));
        // The commune linked to b later: b's claim wins, a is told.
        let r = t.announce_claims(b.clone(), BTreeSet::from([commune.clone()]), &seqs(200));
        assert_eq!(r.superseded, vec![(a.clone(), commune.clone(), 200)]);
        assert_eq!(t.next_hop(&commune), NextHop::Neighbour(b.clone()));
        assert!(!t.announcements()[&a].contains(&commune));
        // a announcing its old claim again does not take it back, and is told again.
        let r = t.announce_claims(a.clone(), BTreeSet::from([commune.clone()]), &seqs(100));
        assert_eq!(r.superseded, vec![(a.clone(), commune.clone(), 200)]);
        assert_eq!(t.next_hop(&commune), NextHop::Neighbour(b.clone()));
        assert_eq!(t.claims(5)[&commune], 200);
        assert!(t.moved_away_from(&a, &commune));
        assert!(!t.moved_away_from(&b, &commune));
    }

    #[test]
    fn a_moved_agency_goes_to_the_parent_until_claimed_anew() {
        let mut t = province();
        let commune = c("000.21.31.H53");
        let district = c("000.00.31.H53");
        t.announce_claims(
            district.clone(),
            BTreeSet::from([commune.clone()]),
            &BTreeMap::from([(commune.clone(), 100)]),
        );
        let (losers, changed) = t.mark_moved(&commune, 200);
        assert!(changed);
        assert_eq!(losers, vec![district.clone()]);
        // Below this node by its code, yet routed up.
        assert_eq!(t.next_hop(&commune), NextHop::Neighbour(c("000.00.00.G22")));
        // Coming back with a newer claim routes it down again.
        t.announce_claims(
            district.clone(),
            BTreeSet::from([commune.clone()]),
            &BTreeMap::from([(commune.clone(), 300)]),
        );
        assert_eq!(t.next_hop(&commune), NextHop::Neighbour(district));
        assert!(t.moved().is_empty());
    }

    #[test]
    fn claims_without_sequences_keep_the_first_announcer() {
        let mut t = province();
        let commune = c("000.21.31.H53");
        t.announce(c("000.00.31.H53"), BTreeSet::from([commune.clone()]));
        t.announce(c("000.00.32.H53"), BTreeSet::from([commune.clone()]));
        assert_eq!(t.next_hop(&commune), NextHop::Neighbour(c("000.00.31.H53")));
    }
}
