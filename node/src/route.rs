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
    wait_for_offline: bool,
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

    /// Records what a child announced. Returns true if the table changed.
    pub fn announce(&mut self, child: AgencyCode, serves: BTreeSet<AgencyCode>) -> bool {
        if self.announced.get(&child) == Some(&serves) {
            return false;
        }
        self.announced.insert(child, serves);
        true
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
        if let Some((child, _)) = self.announced.iter().find(|(_, set)| set.contains(dest)) {
            return NextHop::Neighbour(child.clone());
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
}
