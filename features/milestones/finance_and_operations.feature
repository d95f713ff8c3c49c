@milestones
Feature: The migrated milestones in Finance and Operations
  Dual-write carried the milestones to Finance and Operations while the cutover version of the
  milestone map ran. They must have arrived once each, as Invoiced, with the legacy values, and
  nothing may have moved them on since.

  Scenario: Milestones reached Finance and Operations as Invoiced
    Given the invoiced milestones of the legacy extract
    When they are compared with the milestones in Finance and Operations
    Then none of them is missing in Finance and Operations
    And none of them is in Finance and Operations more than once
    And every one of them reads "Invoiced" in Finance and Operations
    And each has its legacy contract line, amount and date in Finance and Operations within the scope's tolerances
