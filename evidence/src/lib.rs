//! Evidence that holds up outside lienthong: RFC 3161 time-stamps over document signatures,
//! per-document proof bundles, and the signatures inside PDF attachments.
