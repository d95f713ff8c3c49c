@balances @ar
Feature: Accounts receivable did not move
  The migrated milestones had been invoiced in the legacy system already: confirming their
  pro-forma invoices must not post a customer invoice. The customer transactions read before
  and after the cutover must show the same balances and no new voucher.

  Scenario Outline: Customer balances are unchanged
    Given the customer transactions before and after the cutover
    Then no customer balance in <legal entity> moved by more than <tolerance>

    Examples:
      | legal entity                | tolerance             |
      | every legal entity in scope | the scope's tolerance |

  Scenario: No customer transaction was posted during the cutover
    Given the customer transactions before and after the cutover
    Then no customer transaction was posted in every legal entity in scope
