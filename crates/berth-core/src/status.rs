//! Where deliveries and builds stand, and the queues background jobs wait in: each value with the
//! one spelling that is stored and shown (Quay's, for build phases), and the rules that depend
//! only on it.

use crate::CoreError;

string_enum!(
    /// Where a delivery stands.
    DeliveryStatus, "status", {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
        Skipped => "skipped",
        Filtered => "filtered",
    }
);

string_enum!(
    /// A build's phase, as Quay names it.
    BuildPhase, "phase", {
        Waiting => "waiting",
        Pulling => "pulling",
        Building => "building",
        Pushing => "pushing",
        Complete => "complete",
        Error => "error",
        Cancelled => "cancelled",
        InternalError => "internalerror",
        Expired => "expired",
    }
);

string_enum!(
    /// A queue of background jobs: each kind of work waits in its own.
    JobQueue, "queue", {
        Notification => "notification",
        Secscan => "secscan",
        Build => "build",
        Mirror => "mirror",
    }
);

impl BuildPhase {
    /// Whether a build in this phase is finished: it moves no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BuildPhase::Complete
                | BuildPhase::Error
                | BuildPhase::Cancelled
                | BuildPhase::InternalError
                | BuildPhase::Expired
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_name_the_field() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()).unwrap(), *s);
        }
        let e = DeliveryStatus::parse("lost").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid status: 'lost' is not one of: pending, delivered, failed, skipped, filtered"
        );
    }

    #[test]
    fn finished_builds_are_those_that_move_no_more() {
        let finished: Vec<&str> = BuildPhase::ALL
            .iter()
            .filter(|p| p.is_final())
            .map(|p| p.as_str())
            .collect();
        assert_eq!(finished, ["complete", "error", "cancelled", "internalerror", "expired"]);
        assert_eq!(BuildPhase::parse("internalerror").unwrap(), BuildPhase::InternalError);
    }
}
