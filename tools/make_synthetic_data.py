from protune_mm.cli.make_synthetic_data import main

if __name__ == '__main__':
    main()
