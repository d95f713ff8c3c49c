@balances @gl
Feature: The general ledger did not move
  Neither the invoices map nor the actuals map may have posted anything while the pro-forma
  invoices were confirmed. The general ledger read before and after the cutover must show the
  same balance on every main account and no new voucher.

  Scenario Outline: General ledger balances are unchanged per main account
    Given the general ledger before and after the cutover
    Then no main account balance in <legal entity> moved by more than <tolerance>

    Examples:
      | legal entity                | tolerance             |
      | every legal entity in scope | the scope's tolerance |

  Scenario: No voucher was posted during the cutover
    Given the general ledger before and after the cutover
    Then no voucher was posted in the general ledger of every legal entity in scope
