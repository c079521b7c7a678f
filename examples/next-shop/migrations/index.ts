import * as migration_20261201_090805_initial from './20261201_090805_initial';

export const migrations = [
  {
    up: migration_20261201_090805_initial.up,
    down: migration_20261201_090805_initial.down,
    name: '20261201_090805_initial'
  },
];
