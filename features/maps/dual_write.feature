@maps
Feature: Dual-write is back to normal
  After the cutover the milestone map must run its original version again (the cutover
  version would land every new milestone in Finance and Operations as Invoiced), and the
  milestone, actuals and invoices maps must run. Where this account cannot read the maps, the
  scenario is "not verified" and the verdict is incomplete.

  Scenario: The dual-write maps are back on their original version and running
    Given the dual-write maps of the environment
    Then the milestone map runs its original version
    And the milestone, actuals and invoices maps are running
