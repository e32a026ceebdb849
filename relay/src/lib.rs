//! lienthong relay.
