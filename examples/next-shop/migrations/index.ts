import * as migration_20261201_090805_initial from './20261201_090805_initial';
import * as migration_20261202_013313_movement_submission from './20261202_013313_movement_submission';
import * as migration_20261203_140457_returns_and_payments from './20261203_140457_returns_and_payments';

export const migrations = [
  {
    up: migration_20261201_090805_initial.up,
    down: migration_20261201_090805_initial.down,
    name: '20261201_090805_initial',
  },
  {
    up: migration_20261202_013313_movement_submission.up,
    down: migration_20261202_013313_movement_submission.down,
    name: '20261202_013313_movement_submission',
  },
  {
    up: migration_20261203_140457_returns_and_payments.up,
    down: migration_20261203_140457_returns_and_payments.down,
    name: '20261203_140457_returns_and_payments'
  },
];
