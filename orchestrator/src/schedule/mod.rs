//! Scheduling rules of the original: cron expansion, overlap, nearest slot, triggers.
