//! The messages a page shows after a form redirected to it. A redirect names one of a fixed list
//! of keys (`?flash=tag_deleted`) and the page looks its text up, so a link from elsewhere cannot
//! make Berth's pages say anything Berth did not write; unknown keys show nothing.

/// One message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flash {
    TagDeleted,
    TriggerAdded,
    TriggerDeleted,
    PermissionSaved,
    PermissionRemoved,
    TeamCreated,
    TeamDeleted,
    MemberAdded,
    MemberRemoved,
    RobotDeleted,
    NotificationCreated,
    NotificationDeleted,
    TestSent,
    Reenabled,
    SecretRotated,
    Recovered,
    Redelivered,
    DescriptionSaved,
    VisibilitySaved,
    StateSaved,
    MirrorSaved,
    SyncAsked,
    SyncCancelled,
    NotificationsEnabled,
    NotificationsDeleted,
    Paused,
    Resumed,
    NotificationSaved,
}

impl Flash {
    const ALL: [Flash; 28] = [
        Flash::TagDeleted,
        Flash::TriggerAdded,
        Flash::TriggerDeleted,
        Flash::PermissionSaved,
        Flash::PermissionRemoved,
        Flash::TeamCreated,
        Flash::TeamDeleted,
        Flash::MemberAdded,
        Flash::MemberRemoved,
        Flash::RobotDeleted,
        Flash::NotificationCreated,
        Flash::NotificationDeleted,
        Flash::TestSent,
        Flash::Reenabled,
        Flash::SecretRotated,
        Flash::Recovered,
        Flash::Redelivered,
        Flash::DescriptionSaved,
        Flash::VisibilitySaved,
        Flash::StateSaved,
        Flash::MirrorSaved,
        Flash::SyncAsked,
        Flash::SyncCancelled,
        Flash::NotificationsEnabled,
        Flash::NotificationsDeleted,
        Flash::Paused,
        Flash::Resumed,
        Flash::NotificationSaved,
    ];

    /// (key in the URL, text on the page).
    fn parts(self) -> (&'static str, &'static str) {
        match self {
            Flash::TagDeleted => ("tag_deleted", "Tag deleted."),
            Flash::TriggerAdded => (
                "trigger_added",
                "Trigger added: give the service its webhook URL and secret.",
            ),
            Flash::TriggerDeleted => ("trigger_deleted", "Trigger deleted."),
            Flash::PermissionSaved => ("permission_saved", "Permission saved."),
            Flash::PermissionRemoved => ("permission_removed", "Permission removed."),
            Flash::TeamCreated => ("team_created", "Team created."),
            Flash::TeamDeleted => ("team_deleted", "Team deleted."),
            Flash::MemberAdded => ("member_added", "Member added."),
            Flash::MemberRemoved => ("member_removed", "Member removed."),
            Flash::RobotDeleted => ("robot_deleted", "Robot deleted."),
            Flash::NotificationCreated => ("notification_created", "Notification created."),
            Flash::NotificationDeleted => ("notification_deleted", "Notification deleted."),
            Flash::TestSent => ("test_sent", "A test event was sent; its delivery appears below."),
            Flash::Reenabled => ("reenabled", "Re-enabled: failures reset."),
            Flash::SecretRotated => (
                "secret_rotated",
                "Secret rotated; the previous one keeps signing for a while.",
            ),
            Flash::Recovered => ("recovered", "The skipped deliveries since then were queued again."),
            Flash::Redelivered => ("redelivered", "Queued again."),
            Flash::DescriptionSaved => ("description_saved", "Description saved."),
            Flash::VisibilitySaved => ("visibility_saved", "Visibility changed."),
            Flash::StateSaved => ("state_saved", "Repository state changed."),
            Flash::MirrorSaved => ("mirror_saved", "Mirror configuration saved."),
            Flash::SyncAsked => ("sync_asked", "A sync was asked for: a worker starts it shortly."),
            Flash::SyncCancelled => ("sync_cancelled", "Sync cancelled."),
            Flash::NotificationsEnabled => (
                "notifications_enabled",
                "The chosen notifications are enabled, their failures reset.",
            ),
            Flash::NotificationsDeleted => ("notifications_deleted", "The chosen notifications are deleted."),
            Flash::Paused => (
                "paused",
                "Paused: its events are logged as skipped, and recovery can send them once it resumes.",
            ),
            Flash::Resumed => ("resumed", "Resumed: new events are sent again."),
            Flash::NotificationSaved => (
                "notification_saved",
                "Saved. Deliveries queued before the change keep the settings they were made with.",
            ),
        }
    }

    /// `path` (which may have a query already) with this message for the next page.
    pub(super) fn after(self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}flash={}", self.parts().0)
    }

    /// The text of the message a query's `flash` names, if it names one.
    pub(super) fn text_of(key: &str) -> Option<String> {
        Flash::ALL
            .iter()
            .find(|f| f.parts().0 == key)
            .map(|f| f.parts().1.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_keys_show_text() {
        for f in Flash::ALL {
            let url = f.after("/repository/acme/web?tab=tags");
            let key = url.rsplit_once("flash=").unwrap().1;
            assert_eq!(Flash::text_of(key).as_deref(), Some(f.parts().1), "{key}");
        }
        assert_eq!(
            Flash::after(Flash::TeamCreated, "/organization/acme"),
            "/organization/acme?flash=team_created"
        );
        for forged in [
            "",
            "Your account is locked: call +1 555 0100",
            "Tag deleted.",
            "TAG_DELETED",
        ] {
            assert_eq!(Flash::text_of(forged), None, "{forged}");
        }
        let mut keys: Vec<&str> = Flash::ALL.iter().map(|f| f.parts().0).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Flash::ALL.len(), "keys are unique");
    }
}
