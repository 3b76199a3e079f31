from protune_mm.cli.transfer_study import main

if __name__ == '__main__':
    main()
