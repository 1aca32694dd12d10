//! Where a notification's delivery stands, with the spelling stored in the delivery log and shown
//! by the API and the UI.

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
}
