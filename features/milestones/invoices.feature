@milestones
Feature: The pro-forma invoices of the migrated milestones
  Each contract's migrated milestones were invoiced on a pro-forma invoice that was confirmed
  in Project Operations, so that the contract's invoiced amount includes them.

  Scenario: The contracts' invoiced totals include the migrated milestones
    Given the invoiced milestones of the legacy extract
    When their contracts' invoices are read from Dataverse
    Then every contract's migrated milestones are on its confirmed invoices
    And every contract's confirmed invoices total its invoiced milestones within the scope's control total tolerance
