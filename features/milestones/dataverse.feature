@milestones
Feature: The migrated milestones in Dataverse
  The legacy extract is the truth. Every milestone it lists as invoiced must be in Dataverse
  once, with the legacy values, and invoiced through a confirmed pro-forma invoice; nothing
  the legacy system did not invoice may have been migrated.

  Scenario: Every invoiced legacy milestone exists in Dataverse exactly once
    Given the invoiced milestones of the legacy extract
    When they are compared with the milestones in Dataverse
    Then none of them is missing in Dataverse
    And none of them is in Dataverse more than once
    And no other milestone is on their contracts in Dataverse
    And each has its legacy contract line, currency, amount, tax and date in Dataverse within the scope's tolerances
    And the control totals per contract line, contract, legal entity and currency agree with Dataverse

  Scenario: No un-invoiced legacy milestone was migrated
    Given the legacy milestones that are not invoiced
    Then none of them exists in Dataverse

  Scenario: Migrated milestones are Customer invoice posted
    Given the invoiced milestones of the legacy extract
    When they are compared with the milestones in Dataverse
    Then every one of them reads "Customer invoice posted" in Dataverse
